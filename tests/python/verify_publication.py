#!/usr/bin/env python3
"""Re-verifies Jixiao publications independently of the server's code.

Written from docs/PUBLICATION-FORMAT.md alone: it downloads a publication's
canonical inputs document (GetPublicationInputs) and the publication itself
(GetPublication), recomputes the SHA-256 digest and every cell of the
published table (components, review total, adjustment, composite, rank with
its tie-breaks, missing components, flags), and prints a verdict per
publication. Only the standard library and grpcio/protobuf are used; the
message types come from server reflection, as in caller_guide.py, so no
generated code is needed.

    # one publication ("latest" for the newest version of a group)
    python3 tests/python/verify_publication.py --addr 127.0.0.1:50051 \\
        --token "$TOKEN" cycles/2026/groups/districts/publications/1

    # every version of every group of a cycle, keeping the downloads
    python3 tests/python/verify_publication.py --addr 127.0.0.1:50051 \\
        --token "$TOKEN" --all cycles/2026 --save /tmp/pubs

    # offline: a document file against the published table (the JSON that
    # --save writes, i.e. the Publication message in protobuf JSON form)
    python3 tests/python/verify_publication.py \\
        --document /tmp/pubs/cycles_2026_groups_districts_publications_1.inputs \\
        --publication /tmp/pubs/cycles_2026_groups_districts_publications_1.publication.json

Each publication gets one line, "<name>: verified (...)" or
"<name>: MISMATCH (n problems)" followed by one indented line per problem,
naming the cell and why, e.g.
"units/huli composite: document gives 82.941, published 82.940 (...)".
Exit status: 0 when every publication verifies, 1 when any does not, 2 when
the arguments or the connection fail.
"""

import argparse
import decimal
import hashlib
import json
import os
import re
import sys
from decimal import Decimal

# Exact decimal arithmetic (§3): enough precision for any sum of figures of
# 28 significant digits, and an error rather than a silent rounding.
decimal.setcontext(
    decimal.Context(
        prec=200,
        rounding=decimal.ROUND_HALF_UP,
        traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow, decimal.DivisionByZero],
    )
)

FORMAT_2 = "jixiao.aggregator.inputs/2"
FORMAT_1 = "jixiao.aggregator.inputs/1"
COMPONENTS = ["INDICATOR", "SURVEY", "ONLINE", "MUTUAL", "INSPECTION"]
# Flags that block a publication, and the component their decision names.
BLOCKING = {
    "MISSING_TARGET": "INDICATOR",
    "DATA_QUALITY": "INDICATOR",
    "INSUFFICIENT_SAMPLE": "SURVEY",
    "MISSING_CATEGORY": "SURVEY",
    "CONTEST_PENDING": "INSPECTION",
}
THOUSANDTH = Decimal("0.001")
ZERO = Decimal(0)
# Item points are published to 6 places, between 0 and the weight (§2).
POINTS_PLACES = 6
# The timeliness problems a unit record may list (§2).
TIMELINESS = {"PLAN_LATE", "PLAN_MISSING"}
# The one place where rounding is meant to happen (round3), with its own
# context so that the exact context's Inexact trap does not fire there.
ROUNDING = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_UP)

# ---------------------------------------------------------------- syntax (§1)

CANONICAL_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")
INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


class Problems:
    """What does not verify, in the order found."""

    def __init__(self):
        self.items = []

    def add(self, text):
        self.items.append(text)


def canonical_decimal(d):
    """The canonical text of a decimal (§1): no exponent, no trailing zeros."""
    if d == 0:
        return "0"
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def escape(text):
    """Text as the document writes it (§1)."""
    out = []
    for b in text.encode("utf-8"):
        if b < 0x20 or b == 0x7F or b >= 0x80 or b in (0x25, 0x2C):
            out.append("%%%02X" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def unescape(field):
    """Decodes a text field; raises ValueError on a bad escape or bad UTF-8."""
    raw = bytearray()
    i = 0
    while i < len(field):
        c = field[i]
        if c == "%":
            pair = field[i + 1 : i + 3]
            if len(pair) != 2 or not all(ch in "0123456789abcdefABCDEF" for ch in pair):
                raise ValueError(f"bad escape {field[i:i + 3]!r}")
            raw.append(int(pair, 16))
            i += 3
        else:
            raw.extend(c.encode("utf-8"))
            i += 1
    return raw.decode("utf-8")


def round3(d):
    """Rounds to 3 places, ties away from zero (§3); Python's ROUND_HALF_UP
    rounds ties away from zero for negative numbers too."""
    r = d.quantize(THOUSANDTH, context=ROUNDING)
    return r if r != 0 else Decimal("0.000")  # never -0.000


def published(d):
    """A published cell: exactly three decimals, or None when missing."""
    return None if d is None else format(round3(d), "f")


# ------------------------------------------------------------- records (§2)


class Unit:
    def __init__(self, name, display_name, timeliness, line):
        self.name = name
        self.display_name = display_name
        self.timeliness = timeliness
        self.line = line
        self.indicator = None  # {"complete": bool, "items": [...]}
        self.review = None  # {"survey","online","mutual": Decimal|None, "flags": [...], ...}
        self.inspection = None  # {"deductions","credits": Decimal, "findings","contested","credits_items"}


class Document:
    def __init__(self):
        self.format = None
        self.group = None
        self.scheme = None  # dict of decimals
        self.units = []
        self.decisions = []  # (unit, component, flag, reason, line)


class Reader:
    """Parses a document, reporting every departure from the specification."""

    FIELDS = {
        "group": 2,
        "scheme": 6,
        "unit": 4,
        "indicator": 2,
        "item": 5,
        "review": 9,
        "category": 4,
        "inspection": 3,
        "finding": 6,
        "contested": 6,
        "credit": 5,
        "decision": 5,
    }

    def __init__(self, problems):
        self.p = problems
        self.n = 0

    def bad(self, text):
        self.p.add(f"document line {self.n}: {text}")

    def dec(self, field, what):
        try:
            d = Decimal(field)
            if not d.is_finite():
                raise decimal.InvalidOperation
        except (decimal.InvalidOperation, ValueError):
            self.bad(f"{what} {field!r} is not a decimal")
            return ZERO
        if not CANONICAL_DECIMAL.fullmatch(field) or field == "-0":
            self.bad(f"{what} {field!r} is not canonical (would be {canonical_decimal(d)})")
        return d

    def opt(self, field, what):
        return None if field == "-" else self.dec(field, what)

    def int(self, field, what):
        if not INTEGER.fullmatch(field) or field == "-0":
            self.bad(f"{what} {field!r} is not a canonical integer")
            try:
                return int(field)
            except ValueError:
                return 0
        return int(field)

    def text(self, field, what):
        try:
            value = unescape(field)
        except (ValueError, UnicodeDecodeError) as e:
            self.bad(f"{what} {field!r} does not decode: {e}")
            return field
        if escape(value) != field:
            self.bad(f"{what} {field!r} is not escaped canonically (would be {escape(value)!r})")
        return value

    def list(self, field, what):
        if field == "-":
            return []
        items = [self.text(item, what) for item in field.split(",")]
        if any(item == "" for item in items):
            self.bad(f"{what} {field!r} has an empty item")
        return items

    def read(self, data):
        """The Document of `data` (bytes)."""
        doc = Document()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            self.p.add(f"document: not UTF-8: {e}")
            return doc
        if text.startswith("\ufeff"):
            self.p.add("document: starts with a byte-order mark")
        if not text.endswith("\n"):
            self.p.add("document: the last line does not end in a line feed")
        if "\r" in text:
            self.p.add("document: contains a carriage return")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            self.p.add("document: empty")
            return doc
        self.n = 1
        doc.format = lines[0]
        if doc.format not in (FORMAT_2, FORMAT_1):
            self.bad(f"unknown format {doc.format!r}; this verifier knows {FORMAT_2} and {FORMAT_1}")
            return doc
        fields_of = dict(self.FIELDS)
        if doc.format == FORMAT_1:
            fields_of["credit"] = 2
        unit = None
        # What may come next within a unit (§2): a rank per record type.
        order = {"unit": 0, "indicator": 1, "item": 2, "review": 3, "category": 4,
                 "inspection": 5, "finding": 6, "contested": 7, "credit": 8}
        last_rank = None
        for self.n, line in enumerate(lines[1:], start=2):
            f = line.split("\t")
            tag = f[0]
            if tag not in fields_of:
                self.bad(f"unknown record {tag!r}")
                continue
            if len(f) != fields_of[tag]:
                self.bad(f"{tag} needs {fields_of[tag]} fields, has {len(f)}")
                continue
            if tag == "group":
                if self.n != 2:
                    self.bad("the group record must be line 2")
                doc.group = self.text(f[1], "group")
            elif tag == "scheme":
                if self.n != 3:
                    self.bad("the scheme record must be line 3")
                doc.scheme = {
                    k: self.dec(v, k)
                    for k, v in zip(["indicator_max", "survey_max", "online_max", "mutual_max", "cap"], f[1:])
                }
            elif tag == "decision":
                if not doc.units:
                    self.bad("decision before any unit")
                flag = "" if f[3] == "-" else self.text(f[3], "flag")
                if f[2] not in COMPONENTS:
                    self.bad(f"unknown component {f[2]!r}")
                doc.decisions.append((self.text(f[1], "unit"), f[2], flag, self.text(f[4], "reason"), self.n))
                unit, last_rank = None, None
            else:
                if doc.decisions:
                    self.bad(f"{tag} after the decisions")
                if tag == "unit":
                    u = Unit(self.text(f[1], "unit"), self.text(f[2], "display name"),
                             self.list(f[3], "timeliness"), self.n)
                    for problem in u.timeliness:
                        if problem not in TIMELINESS:
                            self.bad(f"{u.name} timeliness: {problem!r} is not one of "
                                     f"{', '.join(sorted(TIMELINESS))}")
                    if doc.units and doc.units[-1].name.encode() >= u.name.encode():
                        self.bad(f"unit {u.name} is not after {doc.units[-1].name} in byte order")
                    doc.units.append(u)
                    unit, last_rank = u, 0
                    continue
                if unit is None:
                    self.bad(f"{tag} before any unit")
                    continue
                rank = order[tag]
                if rank < last_rank or (rank == last_rank and tag in ("indicator", "review", "inspection")):
                    self.bad(f"{tag} out of order in {unit.name}")
                last_rank = rank
                self.unit_record(unit, tag, f)
        if doc.group is None:
            self.p.add("document: no group record")
        if doc.scheme is None:
            self.p.add("document: no scheme record")
        self.check_decision_order(doc)
        return doc

    def unit_record(self, u, tag, f):
        if tag == "indicator":
            if f[1] not in ("complete", "incomplete"):
                self.bad(f"indicator state {f[1]!r} is neither complete nor incomplete")
            u.indicator = {"complete": f[1] == "complete", "items": []}
        elif tag == "item":
            if u.indicator is None:
                self.bad("item before its indicator record")
                return
            item = {
                "code": self.text(f[1], "code"),
                "weight": self.dec(f[2], "weight"),
                "points": self.dec(f[3], "points"),
                "flags": self.list(f[4], "flags"),
            }
            u.indicator["items"].append(item)
            w, p = item["weight"], item["points"]
            if p is not None and p.as_tuple().exponent < -POINTS_PLACES:
                self.bad(f"{u.name} item {item['code']}: points {canonical_decimal(p)} have more than "
                         f"{POINTS_PLACES} decimal places")
            if p is not None and w is not None and not ZERO <= p <= w:
                self.bad(f"{u.name} item {item['code']}: points {canonical_decimal(p)} are outside "
                         f"[0, weight {canonical_decimal(w)}]")
        elif tag == "review":
            u.review = {
                "survey": self.opt(f[1], "survey"),
                "online": self.opt(f[2], "online"),
                "mutual": self.opt(f[3], "mutual"),
                "sample": self.int(f[4], "sample"),
                "votes": self.int(f[5], "votes"),
                "raters": self.int(f[6], "raters"),
                "satisfaction": self.opt(f[7], "satisfaction"),
                "flags": self.list(f[8], "flags"),
                "categories": [],
            }
        elif tag == "category":
            if u.review is None:
                self.bad("category before its review record")
                return
            u.review["categories"].append(
                (self.text(f[1], "code"), self.int(f[2], "responses"), self.dec(f[3], "mean")))
        elif tag == "inspection":
            u.inspection = {
                "deductions": self.dec(f[1], "deductions"),
                "credits": self.dec(f[2], "credits"),
                "findings": [],
                "contested": [],
                "credit_items": [],
                "line": self.n,
            }
        elif tag in ("finding", "contested"):
            if u.inspection is None:
                self.bad(f"{tag} before its inspection record")
                return
            u.inspection["findings" if tag == "finding" else "contested"].append({
                "name": self.text(f[1], "name"),
                "deduction": self.dec(f[2], "deduction"),
                "rectification": self.text(f[3], "rectification"),
                "category": self.text(f[4], "category"),
                "description": self.text(f[5], "description"),
            })
        elif tag == "credit":
            if u.inspection is None:
                self.bad("credit before its inspection record")
                return
            item = {"name": self.text(f[1], "name")}
            if len(f) == 5:
                item.update(item_type=self.text(f[2], "item type"), credit=self.dec(f[3], "credit"),
                            problem=self.text(f[4], "problem"))
            u.inspection["credit_items"].append(item)

    def check_decision_order(self, doc):
        def key(d):
            unit, component, flag, reason, _ = d
            c = COMPONENTS.index(component) if component in COMPONENTS else len(COMPONENTS)
            return (unit.encode(), c, flag.encode(), reason.encode())

        for a, b in zip(doc.decisions, doc.decisions[1:]):
            if key(a) > key(b):
                self.p.add(f"document line {b[4]}: decision out of order (§2: unit, component, flag, reason)")
            if key(a)[:3] == key(b)[:3]:
                self.p.add(f"document line {b[4]}: a second decision on {b[0]} {b[1]} {b[2] or '-'}")


# --------------------------------------------------------------- table (§3)


def compute(doc):
    """The rows of §3, in published order, with how each cell came about."""
    decided = {(u, c, f) for (u, c, f, _, _) in doc.decisions}
    cap = abs(doc.scheme["cap"]) if doc.scheme else Decimal(5)
    rows = []
    for u in doc.units:
        def zero_if(c):
            return ZERO if (u.name, c, "") in decided else None

        why = {}
        exact = {}
        if u.indicator is not None:
            total = sum((i["points"] for i in u.indicator["items"]), ZERO)
            n = len(u.indicator["items"])
            if u.indicator["complete"]:
                exact["indicator"] = total
                why["indicator"] = f"round3 of the sum of {n} item points, {canonical_decimal(total)}"
            elif (u.name, "INDICATOR", "") in decided:
                exact["indicator"] = total
                why["indicator"] = (f"incomplete, decided: round3 of the sum of {n} item points, "
                                    f"{canonical_decimal(total)}")
            else:
                exact["indicator"] = None
                why["indicator"] = f"incomplete ({n} item records) and no INDICATOR decision: missing"
        else:
            exact["indicator"] = zero_if("INDICATOR")
            why["indicator"] = ("no indicator record, explicit zero decided" if exact["indicator"] is not None
                                else "no indicator record and no INDICATOR decision: missing")
        review = u.review or {}
        for c in ("survey", "online", "mutual"):
            value = review.get(c)
            if value is not None:
                exact[c] = value
                why[c] = f"round3 of the review record's {canonical_decimal(value)}"
            else:
                exact[c] = zero_if(c.upper())
                why[c] = (f"no {c} figure, explicit zero decided" if exact[c] is not None
                          else f"no {c} figure and no {c.upper()} decision: missing")
        if u.inspection is not None:
            d, c = u.inspection["deductions"], u.inspection["credits"]
        elif (u.name, "INSPECTION", "") in decided:
            d, c = ZERO, ZERO
        else:
            d, c = None, None

        row = {"unit": u.name, "unit_display_name": u.display_name}
        for k in ("indicator", "survey", "online", "mutual"):
            row[k] = published(exact[k])
        parts = [row["survey"], row["online"], row["mutual"]]
        row["review_total"] = None if None in parts else published(sum(Decimal(x) for x in parts))
        shown = [x or "missing" for x in parts]
        why["review_total"] = f"survey {shown[0]} + online {shown[1]} + mutual {shown[2]}"
        if d is not None:
            adjustment = min(max(c - d, -cap), ZERO)
            row["deductions"], row["credits"] = published(d), published(c)
            row["adjustment"] = published(adjustment)
            why["deductions"] = f"round3 of {canonical_decimal(d)}"
            why["credits"] = f"round3 of {canonical_decimal(c)}"
            why["adjustment"] = (f"round3(clamp(credits {canonical_decimal(c)} - deductions "
                                 f"{canonical_decimal(d)}, -{canonical_decimal(cap)}, 0))")
        else:
            row["deductions"] = row["credits"] = row["adjustment"] = None
        parts = [row["indicator"], row["review_total"], row["adjustment"]]
        row["composite"] = None if None in parts else published(sum(Decimal(x) for x in parts))
        shown = [x or "missing" for x in parts]
        why["composite"] = f"indicator {shown[0]} + review total {shown[1]} + adjustment {shown[2]}"
        missing = []
        if exact["indicator"] is None:
            missing.append("INDICATOR")
        for k in ("survey", "online", "mutual"):
            if exact[k] is None:
                missing.append(k.upper())
        if d is None:
            missing.append("INSPECTION")
        row["missing"] = ["COMPONENT_" + m for m in missing]
        flags = []
        for item in (u.indicator or {}).get("items", []):
            flags += item["flags"]
        flags += review.get("flags", [])
        if u.inspection is not None and u.inspection["contested"]:
            flags.append("CONTEST_PENDING")
        row["flags"] = list(dict.fromkeys(flags))
        row["why"] = why
        rows.append(row)

    # Rank (§3.3): composite, then indicator, then review total, descending.
    def key(r):
        return (Decimal(r["composite"]), Decimal(r["indicator"]), Decimal(r["review_total"]))

    ranked = [r for r in rows if r["composite"] is not None]
    for r in rows:
        if r["composite"] is None:
            r["rank"] = 0
            r["why"]["rank"] = "a component is missing"
        else:
            ahead = sum(1 for o in ranked if key(o) > key(r))
            ties = sum(1 for o in ranked if key(o) == key(r)) - 1
            r["rank"] = 1 + ahead
            r["why"]["rank"] = (f"composite {r['composite']}, indicator {r['indicator']}, review total "
                                f"{r['review_total']}: {ahead} unit(s) ahead"
                                + (f", {ties} tied" if ties else ""))
    rows.sort(key=lambda r: (r["rank"] == 0, r["rank"], r["unit"].encode()))
    return rows


def consistency(doc, problems):
    """The inspection totals follow from the records after them (§2)."""
    for u in doc.units:
        i = u.inspection
        if i is not None:
            found = sum((f["deduction"] for f in i["findings"]), ZERO)
            if found != i["deductions"]:
                problems.add(f"{u.name} inspection: deductions {canonical_decimal(i['deductions'])} are not the "
                             f"sum of its findings, {canonical_decimal(found)} (line {i['line']})")
            if doc.format == FORMAT_2:
                earned = sum((c["credit"] for c in i["credit_items"]), ZERO)
                if earned != i["credits"]:
                    problems.add(f"{u.name} inspection: credits {canonical_decimal(i['credits'])} are not the "
                                 f"sum of its credit records, {canonical_decimal(earned)} (line {i['line']})")


def open_items(doc, rows, problems):
    """A publication leaves nothing open (§3.4)."""
    decided = {(u, c, f) for (u, c, f, _, _) in doc.decisions}
    for r in rows:
        for m in r["missing"]:
            problems.add(f"{r['unit']} {m[len('COMPONENT_'):].lower()}: missing, and no decision makes it an "
                         "explicit zero; a publication leaves nothing open")
        for f in r["flags"]:
            c = BLOCKING.get(f)
            if c and (r["unit"], c, f) not in decided:
                problems.add(f"{r['unit']} flags: {f} blocks publication and no {c} decision resolves it")


# ------------------------------------------------- comparing with the table


CELLS = ["indicator", "survey", "online", "mutual", "review_total", "deductions", "credits",
         "adjustment", "composite"]


def snake(key):
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def normalise(obj):
    """Protobuf JSON (camelCase or proto field names) with snake_case keys."""
    if isinstance(obj, dict):
        return {snake(k): normalise(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalise(v) for v in obj]
    return obj


def cell_of(row, name):
    value = row.get(name)
    if isinstance(value, dict):
        value = value.get("value", "")
    return value if value not in (None, "") else None


def compare(doc, rows, publication, problems):
    """Cell by cell, where the document's table differs from the published one."""
    published_rows = publication.get("rows", [])
    by_unit = {}
    for r in published_rows:
        if r.get("unit", "") in by_unit:
            problems.add(f"{r.get('unit')}: published twice")
        by_unit[r.get("unit", "")] = r
    mine = {r["unit"]: r for r in rows}
    for r in rows:
        theirs = by_unit.get(r["unit"])
        if theirs is None:
            problems.add(f"{r['unit']}: in the document but not in the published table")
            continue
        for cell in CELLS:
            a, b = r[cell], cell_of(theirs, cell)
            if a != b:
                problems.add(f"{r['unit']} {cell}: document gives {a or 'nothing (missing)'}, published "
                             f"{b or 'nothing'} ({r['why'].get(cell, '')})")
        if r["rank"] != int(theirs.get("rank", 0)):
            problems.add(f"{r['unit']} rank: document gives {r['rank']}, published {theirs.get('rank', 0)} "
                         f"({r['why']['rank']})")
        if r["unit_display_name"] != theirs.get("unit_display_name", ""):
            problems.add(f"{r['unit']} unit_display_name: document gives {r['unit_display_name']!r}, "
                         f"published {theirs.get('unit_display_name', '')!r}")
        if r["missing"] != list(theirs.get("missing", [])):
            problems.add(f"{r['unit']} missing: document gives {r['missing']}, published "
                         f"{list(theirs.get('missing', []))}")
        if r["flags"] != list(theirs.get("flags", [])):
            problems.add(f"{r['unit']} flags: document gives {r['flags']}, published "
                         f"{list(theirs.get('flags', []))}")
    for unit in by_unit:
        if unit not in mine:
            problems.add(f"{unit}: published but not in the document")
    order = [r.get("unit", "") for r in published_rows]
    expected = [r["unit"] for r in rows if r["unit"] in by_unit]
    if [u for u in order if u in mine] != expected:
        problems.add(f"row order: published {order}, by rank then unit {expected}")
    # The decisions recorded with the publication are the document's.
    recorded = [(d.get("unit", ""), d.get("component", ""), d.get("flag", ""), d.get("reason", ""))
                for d in publication.get("decisions", [])]
    documented = [(u, "COMPONENT_" + c, f, reason) for (u, c, f, reason, _) in doc.decisions]
    if recorded != documented:
        problems.add(f"decisions: the document records {documented}, the publication {recorded}")


def verify(data, publication, served=None):
    """Problems found verifying a document (bytes) against a publication
    (dict in protobuf JSON form), and a summary of what verified."""
    problems = Problems()
    digest = hashlib.sha256(data).hexdigest()
    published_digest = publication.get("digest", "")
    if digest != published_digest:
        problems.add(f"digest: the document hashes to {digest}, published {published_digest}")
    if served is not None:
        if served.get("digest", "") != published_digest:
            problems.add(f"digest: GetPublicationInputs says {served.get('digest')}, the publication "
                         f"{published_digest}")
    doc = Reader(problems).read(data)
    if served is not None and served.get("format", "") != (doc.format or ""):
        problems.add(f"format: GetPublicationInputs says {served.get('format')!r}, the document's first "
                     f"line is {doc.format!r}")
    if doc.format not in (FORMAT_1, FORMAT_2):
        return problems, digest, doc
    group = publication.get("name", "").split("/publications/")[0]
    if group and doc.group != group:
        problems.add(f"group: the document is of {doc.group}, the publication of {group}")
    consistency(doc, problems)
    rows = compute(doc)
    open_items(doc, rows, problems)
    compare(doc, rows, publication, problems)
    return problems, digest, doc


def report(name, problems, digest, doc):
    """Prints the verdict; True when verified."""
    if not problems.items:
        print(f"{name}: verified (digest {digest}, {len(doc.units)} units, {len(doc.decisions)} decisions, "
              f"{doc.format})")
        return True
    print(f"{name}: MISMATCH ({len(problems.items)} problem{'s' if len(problems.items) != 1 else ''})")
    for p in problems.items:
        print(f"  {p}")
    return False


# ------------------------------------------------------------------ server


class Client:
    """Calls RPCs by name with message types from server reflection."""

    def __init__(self, channel, token):
        from google.protobuf import descriptor_pool
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
            ProtoReflectionDescriptorDatabase,
        )

        self.channel = channel
        self.metadata = [("authorization", f"Bearer {token}")]
        self.pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))

    def call(self, service, method, **fields):
        from google.protobuf import message_factory

        m = self.pool.FindServiceByName(service).methods_by_name[method]
        request = message_factory.GetMessageClass(m.input_type)(**fields)
        response_cls = message_factory.GetMessageClass(m.output_type)
        stub = self.channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=lambda msg: msg.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        return stub(request, metadata=self.metadata, timeout=30)


AGGREGATOR = "jixiao.aggregator.v1.AggregatorService"
PLANS = "jixiao.plans.v1.PlansService"


def as_dict(message):
    from google.protobuf import json_format

    return normalise(json_format.MessageToDict(message, preserving_proto_field_name=True))


def publications_of(client, cycle):
    """Every version of every group of a cycle, oldest first per group."""
    parent = cycle if cycle.startswith("cycles/") else f"cycles/{cycle}"
    names, token = [], ""
    groups = []
    while True:
        page = client.call(PLANS, "ListGroups", parent=parent, page_size=500, page_token=token)
        groups += [g.name for g in page.groups]
        token = page.next_page_token
        if not token:
            break
    for group in groups:
        versions, token = [], ""
        while True:
            page = client.call(AGGREGATOR, "ListPublications", group=group, page_size=500, page_token=token)
            versions += [p.name for p in page.publications]
            token = page.next_page_token
            if not token:
                break
        names += reversed(versions)
    return names


def file_stem(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="publications, cycles/{c}/groups/{g}/publications/{v|latest}")
    parser.add_argument("--addr", help="server address, host:port")
    parser.add_argument("--token", help="a Bearer token of a role that reads publications")
    parser.add_argument("--tls-ca", help="PEM authority: call the server over TLS")
    parser.add_argument("--all", metavar="CYCLE", help="every publication of a cycle (2026 or cycles/2026)")
    parser.add_argument("--save", metavar="DIR", help="keep each document and publication in DIR")
    parser.add_argument("--document", help="offline: an inputs document file")
    parser.add_argument("--publication", help="offline: the published table, the Publication as JSON")
    args = parser.parse_args()

    if args.document or args.publication:
        if not (args.document and args.publication) or args.names or args.all or args.addr:
            parser.error("offline mode takes --document and --publication, nothing else")
        with open(args.document, "rb") as f:
            data = f.read()
        with open(args.publication, encoding="utf-8") as f:
            publication = normalise(json.load(f))
        problems, digest, doc = verify(data, publication)
        name = publication.get("name") or args.document
        return 0 if report(name, problems, digest, doc) else 1

    if not args.addr or not args.token or not (args.names or args.all):
        parser.error("give --addr, --token and publication names or --all CYCLE (or --document and --publication)")
    import grpc

    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            channel = grpc.secure_channel(args.addr, grpc.ssl_channel_credentials(f.read()))
    else:
        channel = grpc.insecure_channel(args.addr)
    try:
        grpc.channel_ready_future(channel).result(timeout=15)
        client = Client(channel, args.token)
        names = list(args.names)
        if args.all:
            names += publications_of(client, args.all)
    except (grpc.RpcError, grpc.FutureTimeoutError) as e:
        print(f"cannot list publications at {args.addr}: {e}", file=sys.stderr)
        return 2
    if not names:
        print(f"nothing to verify: {args.all} has no publications")
        return 1
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    verified = 0
    for name in names:
        try:
            served = client.call(AGGREGATOR, "GetPublicationInputs", name=name)
            publication = client.call(AGGREGATOR, "GetPublication", name=name)
        except grpc.RpcError as e:
            print(f"{name}: MISMATCH (1 problem)\n  cannot read it: {e.code().name} {e.details()}")
            continue
        data = served.document.encode("utf-8")
        pub = as_dict(publication)
        if args.save:
            stem = os.path.join(args.save, file_stem(publication.name))
            with open(stem + ".inputs", "wb") as f:
                f.write(data)
            with open(stem + ".publication.json", "w", encoding="utf-8") as f:
                json.dump(pub, f, ensure_ascii=False, indent=1)
        problems, digest, doc = verify(data, pub, {"digest": served.digest, "format": served.format})
        if served.name != publication.name:
            problems.add(f"name: GetPublicationInputs answers for {served.name}, GetPublication for "
                         f"{publication.name}")
        if report(publication.name, problems, digest, doc):
            verified += 1
    print(f"verified {verified} of {len(names)} publication{'s' if len(names) != 1 else ''}")
    return 0 if verified == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
