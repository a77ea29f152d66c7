"""What a clinician opens: ``measurements.csv`` for the run, and ``report.html``, one self-contained page with each
image's tracing, its measurements against their normal ranges, and what to check."""

from __future__ import annotations

import base64
import csv
import html
import logging
from pathlib import Path

from ignite.engine import Engine

from ..io import output_paths
from .run_file import RunFileWriter

__all__ = ["MeasurementTableWriter", "HtmlReportWriter"]

logger = logging.getLogger("bundle")


def _number(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


class MeasurementTableWriter(RunFileWriter):
    """Write ``<output_dir>/measurements.csv`` when the run completes: one row per image and measurement,
    ``image,measurement,value,unit,interval_low,interval_high,class,class_name,normal_low,normal_high,borderline,``
    ``review,reason`` (from the result records' ``measurements``). Nothing is written when no record has any.

    Args:
        output_dir: destination; an existing table is refused at the start unless ``overwrite``.
        filename: the table's name.
        overwrite: replace an existing table.
    """

    columns = (
        "image", "measurement", "value", "unit", "interval_low", "interval_high", "class", "class_name",
        "normal_low", "normal_high", "borderline", "review", "reason",
    )  # fmt: skip

    def __init__(self, output_dir: str, filename: str = "measurements.csv", overwrite: bool = False):
        self.path, self.overwrite = Path(output_dir) / filename, overwrite
        self.records: list[dict] = []

    def _write(self, records: list[dict], engine: Engine) -> None:
        if any(r.get("measurements") for r in records):
            self._publish(lambda f: self._table(f, records))

    def _table(self, f, records: list[dict]) -> None:
        writer = csv.writer(f)
        writer.writerow(self.columns)
        for record in records:
            for name, m in (record.get("measurements") or {}).items():
                low, high = m["interval"] or (None, None)
                normal = m["normal"] or (None, None)
                writer.writerow(
                    [record["image"], name, _number(m["value"], 4), m["unit"], _number(low, 4), _number(high, 4)]
                    + ["" if m["class"] is None else m["class"], m["class_name"] or ""]
                    + ["" if normal[0] is None else normal[0], "" if normal[1] is None else normal[1]]
                    + [int(m["borderline"]), int(m["review"]), m["reason"] or ""]
                )


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-top: 1px solid #ccc; padding-top: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flag td { background: #fde2e2; } tr.borderline td { background: #fff4d6; }
.image { display: flex; gap: 1.5em; align-items: flex-start; flex-wrap: wrap; }
.image img { max-width: 560px; width: 100%; border: 1px solid #ccc; }
.note { color: #555; font-size: 0.85em; } .bad { color: #b00020; font-weight: bold; }
"""


class HtmlReportWriter(RunFileWriter):
    """Write ``<output_dir>/report.html`` when the run completes: a summary of the run (images, implausible images,
    flagged landmarks and measurements), then per image its overlay with the tracing (the PNG that
    :class:`~bundle.handlers.LandmarkFiles` wrote, embedded as data, so the page opens offline and alone), its
    measurements with intervals, normal ranges and classes (flagged ones red, borderline ones yellow), and the
    landmarks to check with their reasons. No script, no file or network reference.

    Args:
        output_dir: where the run writes (the overlays are read from there); the page goes there too.
        title: the page's title.
        filename: the page's name.
        overwrite: replace an existing page.
    """

    def __init__(
        self,
        output_dir: str,
        title: str = "Landmarks and measurements",
        filename: str = "report.html",
        overwrite: bool = False,
    ):
        self.output_dir, self.title, self.overwrite = Path(output_dir), title, overwrite
        self.path = self.output_dir / filename
        self.records: list[dict] = []

    def _write(self, records: list[dict], engine: Engine) -> None:
        self._publish(lambda f: f.write(page(records, self.title, self.output_dir)))
        logger.info(f"report: {self.path}")


def page(records: list[dict], title: str, folder: Path) -> str:
    """The report's HTML for the result records of a run, with the overlays found in ``folder``."""
    e = html.escape
    flagged = sum(landmark["review"] for r in records for landmark in r["landmarks"])
    landmarks = sum(len(r["landmarks"]) for r in records)
    implausible = [r for r in records if r.get("plausible") is False]
    measures = [m for r in records for m in (r.get("measurements") or {}).values()]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<table><tr><th>images</th><th>implausible images</th><th>landmarks flagged for review</th>"
        "<th>measurements flagged</th><th>measurements borderline</th></tr>",
        f'<tr><td class="num">{len(records)}</td><td class="num">{len(implausible)}</td>'
        f'<td class="num">{flagged} of {landmarks}</td>'
        f'<td class="num">{sum(m["review"] for m in measures)} of {len(measures)}</td>'
        f'<td class="num">{sum(m["borderline"] for m in measures)}</td></tr></table>',
        '<p class="note">Research software, not a medical device. Each landmark carries a radius within which its true'
        " position lies with the stated probability; intervals of measurements follow from those radii. Check every"
        " flagged landmark and measurement.</p>",
    ]
    for record in records:
        parts += _image_section(record, folder)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _page_picture(overlay: Path, long_side: int = 900) -> bytes:
    """The overlay PNG as a JPEG of at most ``long_side`` pixels: a tenth of the PNG's bytes, so that a report of a
    few hundred images stays a page a browser opens."""
    from io import BytesIO

    from PIL import Image

    with Image.open(overlay) as picture:
        picture = picture.convert("RGB")
        picture.thumbnail((long_side, long_side), Image.LANCZOS)
        buffer = BytesIO()
        picture.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _image_section(record: dict, folder: Path) -> list[str]:
    e = html.escape
    name = Path(record["image"]).name
    parts = [f"<h2>{e(name)}</h2>"]
    facts = (
        f"spacing {', '.join(f'{s:.4g}' for s in record['spacing'])} mm per pixel ({e(str(record['spacing_source']))});"
        f" orientation {e(str(record.get('orientation')))}"
    )
    if record.get("plausible") is False:
        facts += '; <span class="bad">the landmarks do not form a plausible configuration: every one is flagged</span>'
    parts.append(f'<p class="note">{facts}</p><div class="image">')
    overlay = output_paths(record["image"], folder)[-1]  # where LandmarkFiles wrote it
    if overlay.is_file():
        data = base64.b64encode(_page_picture(overlay)).decode("ascii")
        parts.append(f'<img alt="{e(name)}: landmarks and tracing" src="data:image/jpeg;base64,{data}">')
    else:
        parts.append('<p class="note">(no overlay was written for this image)</p>')
    parts.append("<div>")
    measurements = record.get("measurements") or {}
    if measurements:
        coverage = record.get("error_radius_coverage")
        interval = f"{round(100 * coverage)} % interval" if coverage else "interval"
        parts.append(
            f"<table><tr><th>measurement</th><th>value</th><th>{interval}</th><th>normal</th><th>class</th></tr>"
        )
        for mname, m in measurements.items():
            row_class = "flag" if m["review"] else "borderline" if m["borderline"] else ""
            digits = 1 if m["unit"] else 3  # degrees and millimetres to a tenth, ratios to a thousandth
            low_high = m["interval"]
            interval_text = "" if low_high is None else f"{low_high[0]:.{digits}f} to {low_high[1]:.{digits}f}"
            normal = m["normal"]
            normal_text = "" if not normal else " to ".join("" if v is None else f"{v:g}" for v in normal)
            value = "&ndash;" if m["value"] is None else f"{m['value']:.{digits}f} {e(m['unit'])}".strip()
            label = e(m["class_name"] or (m["reason"] or ""))
            if m["borderline"]:
                label += " (borderline)"
            parts.append(
                f'<tr class="{row_class}"><td>{e(mname)}</td><td class="num">{value}</td>'
                f'<td class="num">{interval_text}</td><td class="num">{normal_text}</td><td>{label}</td></tr>'
            )
        parts.append("</table>")
    checks = [landmark for landmark in record["landmarks"] if landmark["review"]]
    if checks:
        parts.append("<p><b>Check these landmarks:</b></p><ul>")
        for landmark in checks:
            reasons = ", ".join(r.replace("_", " ") for r in landmark.get("review_reasons", []))
            radius = landmark.get("error_radius_mm")
            radius_text = "" if radius is None else f", radius {radius:.1f} mm"
            parts.append(f"<li>{landmark['index']} {e(landmark['name'])}: {e(reasons)}{radius_text}</li>")
        parts.append("</ul>")
    else:
        parts.append("<p>No landmark is flagged.</p>")
    parts.append("</div></div>")
    return parts
