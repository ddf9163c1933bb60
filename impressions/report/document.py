"""A report written twice in step: Markdown (figures linked) and self-contained HTML (figures embedded)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;font-variant-numeric:tabular-nums}"
    "th{background:#f3f3f3}tr.published{color:#666;font-style:italic}tr.baseline{background:#fafae6}"
    "img{max-width:36rem}figure{margin:1rem 0}figure img{max-width:100%}"
    "figcaption,p.caption{font-size:.9rem;color:#444;max-width:60rem}"
)


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(header: Sequence[str], rows: Sequence[Sequence], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def data_uri(path: Path, max_png_bytes: int = 150_000) -> str:
    """A figure to embed: PNG as is when small, else JPEG (photo grids shrink about fivefold)."""
    data = path.read_bytes()
    if len(data) <= max_png_bytes:
        return "data:image/png;base64," + base64.b64encode(data).decode()
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def relative(path: Path, report_dir: Path) -> Path:
    """`path` as the Markdown report links it: relative to the report's folder when under results/."""
    return (
        Path("..") / path.relative_to(report_dir.parent) if path.is_relative_to(report_dir.parent) else path
    )


class Document:
    """Markdown and HTML bodies built side by side; `write` puts them in their files."""

    def __init__(self, title: str):
        self.title = title
        self.md = [f"# {title}\n"]
        self.body: list[str] = []

    def section(self, title: str, text: str = "") -> None:
        self.md.append(f"\n## {title}\n")
        self.body.append(f"<h2>{html.escape(title)}</h2>")
        if text:
            self.paragraph(text)

    def chapter(self, title: str) -> None:
        """A top-level heading (the interpretation part)."""
        self.md.append(f"\n# {title}\n")
        self.body.append(f"<h1>{html.escape(title)}</h1>")

    def paragraph(self, text: str) -> None:
        self.md.append(text + "\n")
        self.body.append(f"<p>{html.escape(text)}</p>")

    def labelled(self, label: str, text: str) -> None:
        """A one-line fact with a bold label in HTML (`Split: ...`)."""
        self.md.append(f"{label}: {text}\n")
        self.body.append(f"<p><b>{label}:</b> {html.escape(text)}</p>")

    def bullets(self, lines: Sequence[str]) -> None:
        self.md.append("\n".join(f"- {line}" for line in lines) + "\n")
        self.body.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")

    def caption(self, text: str) -> None:
        self.md.append(f"*{text}*\n")
        self.body.append(f"<p class='caption'>{html.escape(text)}</p>")

    def table(self, header, rows, kinds=()) -> None:
        self.md.append(md_table(header, rows) + "\n")
        self.body.append(html_table(header, rows, kinds))

    def figure(self, path: Path, link: str, caption: str, alt: str) -> None:
        """A captioned figure: linked as `link` in Markdown, embedded in HTML."""
        self.md.append(f"![{caption}]({link})\n\n*{caption}*\n")
        self.body.append(
            f"<figure><img alt='{html.escape(alt)}' src='{data_uri(path)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def write(self, markdown: Path, html_path: Path) -> None:
        Path(markdown).write_text("\n".join(self.md) + "\n")
        Path(html_path).write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{self.title}</title>"
            f"<style>{STYLE}</style></head><body><h1>{self.title}</h1>{''.join(self.body)}</body></html>\n"
        )
