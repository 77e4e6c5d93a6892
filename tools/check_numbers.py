r"""
# Every number in a notebook's prose agrees with what the notebook shows

The course's rule: a number in a notebook's markdown is printed by one of its cells, or
read from a committed results file that the notebook loads. This script finds every
number in the markdown cells of `notebooks/*.ipynb` and looks for it in

1. the notebook's stored outputs (stream text, `text/plain`, `text/html`,
   `text/markdown`, `text/latex`), then
2. the committed results files its code cells name: `stored_result("x.csv")` and
   `benchmarks/results/...` (an f-string placeholder such as `{run}` matches any name),
   then
3. the allow-list `tools/prose_numbers_allowed.toml`, where each entry names the
   notebook, the number and why it needs no cell (a year, a paper's figure with its
   source, a count the code defines, ...).

    python tools/check_numbers.py                          # every notebook in notebooks/
    python tools/check_numbers.py notebooks/05_*.ipynb     # some of them
    python tools/check_numbers.py --allow my.toml a.ipynb  # another allow-list

For each number found nowhere it prints the notebook, the cell index, the number and
its sentence, and exits with status 1. `make test` runs it (target `prose-numbers`).

## When a number counts as shown

A number written with `d` decimals is supported by a shown number that rounds to it at
`d` decimals: 0.4478 supports 0.448, 0.45 and 0. A percentage (`44.8 %`, `45 percent`)
or a number with decimals is also supported by a fraction 100 times smaller (0.4478
supports 44.8 % and 45 %). Signs and thousands separators are ignored (`3,900` is 3900).

A **ratio** (`2.5x`, `2.5×`, `$2.5\times$`, `2.5 times`, `2.5-fold`) must be shown as a
ratio: a number followed by `x`, `×` or `times` in an output. A ratio the reader would
have to divide out is not shown (36.2 and 1.64 printed do not support "22x").

## Numbers that are not claims (excluded by rule)

- code: fenced blocks and inline `code` spans (they are code, not prose; a setting
  such as `features=256` names the code's value);
- links and markup: URLs, HTML tags, image sources, arXiv identifiers;
- numbering: the number of a heading (`## 3. Title`), of a numbered list item
  (`1. ...`, `**2. Title.**`), a section number opening a link (`[8.6 Residual
  networks](...)`), references to a section, figure, table, equation,
  exercise, step, cell, chapter or notebook (`section 8.6`, `Fig. 3`, `notebook 07`),
  and zero-padded notebook numbers (`01` ... `09`);
- names: digits inside or attached to a word (`ResNet-50`, `ResNet-50/101/152`,
  `layer4`, `conv1`, `T4`, `0001TP`, `2D`, `float64`), version numbers (`1.0.3`,
  `Python 3.11`) and years (integers from 1950 to 2035 with no unit);
- structure: square kernel and window sizes (`3x3`, `5×5`, `$1\times1$`), exponents
  and indices in LaTeX (`x^2`, `r_0`, `\sum_{n=1}^{N}`) and coefficients of a symbol
  (`4n`, `2d`, `9F^2`), and plain integers from 0 to 10 that are neither a percentage
  nor a ratio (counts of stages, passes, blocks, classes of a toy example: they are
  read off the code, and a check would only add noise);
- arithmetic written out: the result of a computation in LaTeX whose left side holds
  only numbers and `+ - \cdot \times /` (`$3 \cdot 2 \cdot 8 = 48$`,
  `$11 + 32 = 43$`), checked by evaluating it; its operands are checked as usual, so a
  chain of sums in a worked table is shown when its first terms are;
- the `**Run time:**` paragraph of the opening: the whole notebook's wall time, which
  no cell can print before it has run (it is measured when the notebook is executed).

Anything else that no output shows goes to the allow-list with its reason, or better,
into a cell that prints it.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = Path(__file__).with_name("prose_numbers_allowed.toml")

# A number: digits with optional thousands separators and decimals ("3,900", "0.448")
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
NUMBER = re.compile(_NUM)
# Output numbers may also use scientific notation (1e-4, 2.5e+03)
OUTPUT_NUMBER = re.compile(rf"(?:{_NUM})(?:[eE][-+]?\d+)?")
# A ratio in an output: "2.55x", "2.55 ×", "2.55 times"
OUTPUT_RATIO = re.compile(rf"({_NUM})\s?(?:x|×|times)(?![A-Za-z0-9])")
# A multiplication sign between two numbers or after a ratio, in text or LaTeX
TIMES = r"(?:\s*(?:x|×|\\times)\s*)"
# Words after which a number (or a list of them) is a reference, not a quantity
REFERENCE = re.compile(
    r"\b(?:sections?|§|fig\.?|figures?|tables?|eq\.?|equations?|exercises?|steps?|cells?|"
    r"chapters?|notebooks?|issues?|python|version)\s*"
    r"(?:\d+(?:\.\d+)?\s*(?:,|and|or|to|-|–)\s*)*$",
    re.IGNORECASE,
)
UNITS = {"px", "m", "g", "k", "s", "ms", "min", "h", "gb", "mb", "kb", "gmac", "gmacs",
         "mac", "macs", "gflops", "flops", "mp", "st", "nd", "rd", "th"}
ORDINALS = {"st", "nd", "rd", "th"}


@dataclass
class Claim:
    """A number in a markdown cell: its value as written, kind and sentence."""

    text: str  # as written, e.g. "44.8"
    value: float
    decimals: int
    kind: str  # "plain", "percent" or "ratio"
    sentence: str


@dataclass
class Failure:
    notebook: str
    cell: int
    claim: Claim

    def __str__(self) -> str:
        what = {"percent": " %", "ratio": "x"}.get(self.claim.kind, "")
        return (f"{self.notebook} cell {self.cell}: {self.claim.text}{what} is shown nowhere: "
                f"\"{self.claim.sentence}\"")


# ----------------------------------------------------------------------------- prose


def _blank(text: str, pattern: str, flags: int = 0) -> str:
    """`text` with every match of `pattern` replaced by spaces (positions are kept)."""
    return re.sub(pattern, lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=flags)


def _mask_markup(text: str) -> str:
    """Blank what is not prose: code, URLs, HTML tags, run-time notes, numbering."""
    text = _blank(text, r"```.*?```", re.DOTALL)  # fenced code
    text = _blank(text, r"`[^`\n]*`")  # inline code
    text = _blank(text, r"\]\([^)\s]*\)")  # link targets
    text = _blank(text, r"https?://\S+")
    text = _blank(text, r"<[^>\n]*>")  # HTML tags
    text = _blank(text, r"arXiv:\s*\d+\.\d+", re.IGNORECASE)
    text = _blank(text, r"\*\*Run time:\*\*.*?(?:\n\s*\n|\Z)", re.DOTALL)
    text = _blank(text, r"^#+\s*\d+(?:\.\d+)*\.?", re.MULTILINE)  # heading numbers
    text = _blank(text, r"^\s*(?:\*\*)?\d+\.(?=\s|\*\*)", re.MULTILINE)  # list numbers
    text = _blank(text, r"\d+(?:\.\d+){2,}")  # versions: 1.0.3
    return text


def _latex_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every `$...$` and `$$...$$` span."""
    return [m.span() for m in re.finditer(r"\$\$.*?\$\$|\$[^$]+\$", text, re.DOTALL)]


def _mask_latex(text: str) -> str:
    """Inside LaTeX, blank exponents and indices, and coefficients of a symbol."""
    out = list(text)
    for start, end in _latex_spans(text):
        span = text[start:end]
        for m in re.finditer(r"[_^](?:\{[^{}]*\}|\\?[A-Za-z0-9])", span):
            out[start + m.start():start + m.end()] = " " * (m.end() - m.start())
        for m in re.finditer(r"\d+(?:\.\d+)?(?=[A-Za-z(]|\\(?!times|cdot|,|;|%|\s|!))", span):
            out[start + m.start():start + m.end()] = " " * (m.end() - m.start())
    return "".join(out)


def _sentence(text: str, pos: int) -> str:
    """The sentence of the original `text` around position `pos`, on one line."""
    starts = [m.end() for m in re.finditer(r"[.!?:]\s+(?=[A-Z(*$])|\n\s*\n|^\s*[-*|] ",
                                           text[:pos], re.MULTILINE)]
    start = starts[-1] if starts else 0
    end_match = re.search(r"[.!?](?=\s|$)|\n\s*\n", text[pos:])
    end = pos + end_match.end() if end_match else len(text)
    sentence = " ".join(text[start:end].split())
    return sentence if len(sentence) <= 240 else sentence[:237] + "..."


def _square(text: str, start: int, end: int) -> bool:
    """The number at [start, end) is one side of a square size such as 3x3 or 5×5."""
    n = text[start:end]
    after = re.match(rf"{TIMES}(\d+)", text[end:])
    before = re.search(rf"(\d+){TIMES}$", text[:start])
    return bool((after and after.group(1) == n) or (before and before.group(1) == n))


def _kind(text: str, start: int, end: int) -> str:
    """'percent', 'ratio' or 'plain' for the number at [start, end)."""
    rest = text[end:]
    if re.match(r"\s?(?:\\?%|percent\b)", rest):
        return "percent"
    if re.match(r"\s?(?:-fold\b|times\b)", rest):
        return "ratio"
    m = re.match(rf"{TIMES}(.?)", rest)
    if m and not m.group(1).isdigit() and not re.match(rf"{TIMES}\$?\s*\\?\(?\d", rest):
        # "16x", "16×", "$16\times$": a ratio unless another number follows (360 x 480)
        if m.group(0).strip() or rest[:1] in "x×":
            return "ratio"
    return "plain"


ARITHMETIC = re.compile(
    r"((?:\d+(?:\.\d+)?|[\s()+\-*/]|\\cdot|\\times|\\,)+?)\s*(?:=|\\approx)\s*(\d+(?:\.\d+)?)"
)


def derived(markdown: str) -> set[str]:
    r"""Numbers that the cell derives by arithmetic written out in LaTeX, such as
    `$3 \cdot 2 \cdot 8 = 48$` or `$45 \cdot 60 / (23 \cdot 30) \approx 3.9$`: the result,
    as written, when the left side (numbers and + - * / only) rounds to it."""
    results = set()
    for start, end in _latex_spans(markdown):
        for m in ARITHMETIC.finditer(markdown[start:end]):
            expression = m.group(1).replace("\\cdot", "*").replace("\\times", "*")
            expression = expression.replace("\\,", "").strip()
            if not re.search(r"\d\s*[-+*/]\s*\(?\s*\d", expression):
                continue  # a lone number ("r = 435"), not a computation
            try:
                value = eval(expression, {"__builtins__": {}})  # digits and operators only
            except (SyntaxError, ZeroDivisionError, TypeError):
                continue
            text = m.group(2)
            decimals = len(text.split(".")[1]) if "." in text else 0
            if math.isclose(round(value, decimals), float(text), abs_tol=1e-9):
                results.add(text)
    return results


def claims(markdown: str) -> list[Claim]:
    """The numbers of one markdown cell that must be shown by the notebook."""
    masked = _mask_latex(_mask_markup(markdown))
    worked_out = derived(markdown)
    found = []
    for m in NUMBER.finditer(masked):
        start, end = m.span()
        before, after = masked[:start], masked[end:]
        if (re.search(r"[A-Za-z_]-?$", before) or re.search(r"\d[.,]?$", before)
                or re.search(r"[A-Za-z]-?\d+(?:/\d+)*/$", before)):
            continue  # part of a name: ResNet-50, layer4, 0001TP_006690, ResNet-50/101
        if re.search(r"\[$", before):
            continue  # a section number opening a link's text: [8.6 Residual networks]
        word = re.match(r"[A-Za-z]+", after)
        if word and word.group(0).lower() not in UNITS | {"x"}:
            continue  # a name such as 0001TP, 2D, 4n (outside LaTeX)
        if word and word.group(0).lower() in ORDINALS:
            continue
        if word and word.group(0) == "x" and re.match(r"x[A-Za-z]", after):
            continue
        if REFERENCE.search(before[-40:]):
            continue  # section 8.6, Fig. 2 and 3, notebooks 02 and 06
        text = m.group(0)
        if re.fullmatch(r"0\d", text):
            continue  # a notebook number: 01 ... 09
        if _square(masked, start, end):
            continue  # a kernel or window size: 3x3, 5×5
        kind = _kind(masked, start, end)
        value = float(text.replace(",", ""))
        decimals = len(text.split(".")[1]) if "." in text else 0
        if kind == "plain" and decimals == 0:
            if value <= 10:
                continue  # a small count read off the code
            if 1950 <= value <= 2035:
                continue  # a year
        if text in worked_out:
            continue  # derived by the arithmetic written next to it
        found.append(Claim(text, value, decimals, kind, _sentence(markdown, start)))
    return found


# ----------------------------------------------------------------------------- evidence


def _html_text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def output_text(nb: dict) -> str:
    """All text a notebook's stored outputs show, one string."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append("".join(out.get("text", "")))
            for mime, value in out.get("data", {}).items():
                value = "".join(value) if isinstance(value, list) else str(value)
                if mime == "text/html":
                    parts.append(_html_text(value))
                elif mime in ("text/plain", "text/markdown", "text/latex"):
                    parts.append(value)
    return "\n".join(parts)


def results_files(nb: dict, root: Path = ROOT) -> list[Path]:
    """The committed results files that the notebook's code cells name."""
    names = set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        code = "".join(cell["source"])
        for m in re.finditer(r"stored_result\(\s*f?[\"']([^\"']+)[\"']", code):
            names.add(m.group(1))
        for m in re.finditer(r"benchmarks/results/([\w./{}*-]+)", code):
            names.add(m.group(1))
    files = set()
    for name in names:
        pattern = re.sub(r"\{[^}]*\}", "*", name)
        files.update(Path(p) for p in glob.glob(str(root / "benchmarks" / "results" / pattern)))
    return sorted(f for f in files if f.is_file() and f.suffix in (".csv", ".txt", ".json"))


def _numbers(text: str) -> list[float]:
    values = []
    for m in OUTPUT_NUMBER.finditer(text):
        try:
            values.append(float(m.group(0).replace(",", "")))
        except ValueError:
            continue
    return values


@dataclass
class Evidence:
    """The numbers a notebook shows, and the ratios among them."""

    numbers: list[float]
    ratios: list[float]

    @classmethod
    def of(cls, nb: dict, root: Path = ROOT) -> Evidence:
        text = output_text(nb)
        numbers = _numbers(text)
        for path in results_files(nb, root):
            if path.suffix == ".csv":
                with path.open(newline="") as f:
                    numbers += _numbers(" ".join(" ".join(row) for row in csv.reader(f)))
            else:
                numbers += _numbers(path.read_text())
        ratios = [float(m.group(1).replace(",", "")) for m in OUTPUT_RATIO.finditer(text)]
        return cls(numbers, ratios)

    def supports(self, claim: Claim) -> bool:
        pool = self.ratios if claim.kind == "ratio" else self.numbers
        scales = [1.0]
        if claim.kind == "percent" or claim.decimals > 0:
            scales.append(100.0)
        target = round(claim.value, claim.decimals)
        for shown in pool:
            for scale in scales:
                if math.isclose(round(abs(shown) * scale + 1e-12, claim.decimals), target,
                                abs_tol=1e-9):
                    return True
        return False


# ----------------------------------------------------------------------------- checking


def load_allowed(path: Path = ALLOWED) -> list[dict]:
    """The allow-list: entries with `notebook` (file name prefix, or "*"), `number`
    (as written in the prose), `why`, and optionally `near` (a word of its sentence)."""
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("allow", [])
    for entry in entries:
        missing = {"notebook", "number", "why"} - set(entry)
        if missing or not str(entry["why"]).strip():
            raise ValueError(f"{path.name}: entry {entry} lacks {sorted(missing) or ['why']}")
    return entries


def _allowed(name: str, claim: Claim, allowed: list[dict]) -> bool:
    for entry in allowed:
        if entry["notebook"] != "*" and not name.startswith(entry["notebook"]):
            continue
        if str(entry["number"]) != claim.text:
            continue
        if "near" in entry and entry["near"].lower() not in claim.sentence.lower():
            continue
        return True
    return False


def check_notebook(path: Path, allowed: list[dict], root: Path = ROOT) -> list[Failure]:
    """Every number of the notebook's markdown that it does not show."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    evidence = Evidence.of(nb, root)
    failures = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for claim in claims("".join(cell["source"])):
            if not evidence.supports(claim) and not _allowed(path.name, claim, allowed):
                failures.append(Failure(path.name, index, claim))
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip("# \n"))
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to check (default: notebooks/*.ipynb)")
    parser.add_argument("--allow", type=Path, default=ALLOWED, help="allow-list (TOML)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    allowed = load_allowed(args.allow)
    failures = [f for p in paths for f in check_notebook(p, allowed)]
    for failure in failures:
        print(failure)
    checked = f"{len(paths)} notebook" + "s" * (len(paths) != 1)
    if failures:
        print(f"{len(failures)} number(s) in the prose of {checked} shown by no output, "
              f"results file or allow-list entry ({Path(args.allow).name})")
        return 1
    print(f"every number in the prose of {checked} is shown by an output, a results file "
          "or the allow-list")
    return 0


if __name__ == "__main__":
    sys.exit(main())
