"""Tables as Go's olekukonko/tablewriter v0.0.5 draws them with its defaults, which is how
Felix's health endpoint, calico-node -show-status and calicoctl's ipam commands print
theirs: "+---+" rules above and below the heading and at the bottom, headings
upper-cased ("_" read as a space) and centred (the odd space on the right), a body cell
that reads as a decimal number right-aligned and any other left-aligned. A cell of
several words wider than 30 columns is wrapped onto more lines (a single long word is
not), and its column is then at least 30 wide.
"""
from __future__ import annotations

import re
import unicodedata

MAX_CELL_WIDTH = 30
_DECIMAL = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})*|[0-9]+)(?:\.[0-9]+)?")
_ANSI = re.compile("\033\\[(?:[0-9]{1,3}(?:;[0-9]{1,3})*)?[m|K]")


def display_width(text: str) -> int:
    """Terminal columns (East Asian wide characters count two, combining marks none)."""
    text = _ANSI.sub("", text)
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def title(text: str) -> str:
    """A heading as tablewriter prints it: '_' becomes a space, and so does a '.' unless
    it sits between digits or spaces; trimmed; upper-cased."""
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch == "_":
            chars[i] = " "
        elif ch == ".":
            number_before = i == 0 or chars[i - 1] in "0123456789 "
            number_after = i == len(chars) - 1 or chars[i + 1] in "0123456789 "
            if not (number_before and number_after):
                chars[i] = " "
    title = "".join(chars).strip()
    if not title and text:
        title = " "
    return title.upper()


def wrap_words(words: list[str], limit: int) -> list[list[str]]:
    """Break words into lines of at most ``limit`` columns, minimising the sum of the
    squared slack of every line but the last (overlong lines cost a large penalty)."""
    n = len(words)
    widths = [display_width(w) for w in words]

    def span(i: int, j: int) -> int:  # width of words[i..j] joined by single spaces
        return sum(widths[i:j + 1]) + (j - i)

    cost = [2 ** 31 - 1] * n
    brk = [0] * n
    for i in range(n - 1, -1, -1):
        if span(i, n - 1) <= limit:
            cost[i], brk[i] = 0, n
            continue
        for j in range(i + 1, n):
            used = span(i, j - 1)
            c = (limit - used) ** 2 + cost[j]
            if used > limit:
                c += 100000
            if c < cost[i]:
                cost[i], brk[i] = c, j
    lines, i = [], 0
    while i < n:
        lines.append(words[i:brk[i]])
        i = brk[i]
    return lines


def cell_lines(text: str) -> tuple[list[str], int]:
    """A cell's lines and the width its column needs for it."""
    raw = text.split("\n")
    width = min(max(display_width(line) for line in raw), MAX_CELL_WIDTH)
    words = " ".join(raw).split(" ")
    limit = max([width] + [display_width(w) for w in words])
    lines = [" ".join(line) for line in wrap_words(words, limit)]
    return lines, max([width] + [display_width(line) for line in lines])


def table(header: list[str], rows: list[list[str]]) -> str:
    """The table, each line ending in a newline."""
    ncols = len(header)
    widths = [0] * ncols
    heading = []
    for i, text in enumerate(header):
        lines, width = cell_lines(text)
        heading.append(lines)
        widths[i] = max(widths[i], width)
    body = []
    for row in rows:
        cells = []
        for i, text in enumerate(row):
            lines, width = cell_lines(text)
            cells.append(lines)
            widths[i] = max(widths[i], width)
        body.append(cells)

    def pad(text: str, width: int, how: str) -> str:
        gap = width - display_width(text)
        if gap <= 0:
            return text
        if how == "centre":
            return " " * (gap // 2) + text + " " * (gap - gap // 2)
        if how == "right":
            return " " * gap + text
        return text + " " * gap

    rule = "+" + "".join("-" * (w + 2) + "+" for w in widths) + "\n"
    out = [rule]
    for x in range(max(len(lines) for lines in heading)):
        out.append("|" + "".join(
            f" {pad(title(heading[y][x] if x < len(heading[y]) else ''), widths[y], 'centre')} |"
            for y in range(ncols)) + "\n")
    out.append(rule)
    for cells in body:
        for x in range(max(len(lines) for lines in cells)):
            line = "|"
            for y, lines in enumerate(cells):
                text = lines[x] if x < len(lines) else "  "
                line += f" {pad(text, widths[y], 'right' if _DECIMAL.fullmatch(text.strip()) else 'left')} |"
            out.append(line + "\n")
    out.append(rule)
    return "".join(out)
