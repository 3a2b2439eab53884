"""Value-level checks of HL7 v2.5.1 messages, beyond hl7apy's structure check.

Written from the v2.5.1 standard's segment attribute tables and HL7 tables, independently of the
product's builder: required fields, field lengths, coded values against their HL7 tables,
timestamps and dates, numbers, escape sequences, and fields v2.5.1 reserves. `check(text)`
returns a list of problems (empty: the message passes).

Lengths are counted on the unescaped value of each repetition (an escape such as \\F\\ is one
character of data), as chapter 2 counts data characters.
"""
import re
from datetime import date

# HL7 tables, v2.5.1, the values of the fields this profile sends (written out from the
# standard's tables; hl7apy's copy of 0125 lacks CWE, which v2.5 added).
TABLES = {
    "0001": {"A", "F", "M", "N", "O", "U"},
    "0008": {"AA", "AE", "AR", "CA", "CE", "CR"},
    "0038": {"A", "CA", "CM", "DC", "ER", "HD", "IP", "RP", "SC"},
    "0078": {"<", ">", "A", "AA", "B", "D", "H", "HH", "I", "L", "LL", "MS", "N", "R", "S",
             "U", "VS", "W"},
    "0085": {"C", "D", "F", "I", "N", "O", "P", "R", "S", "U", "W", "X"},
    "0103": {"D", "P", "T"},
    "0104": {"2.0", "2.0D", "2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1"},
    "0105": {"L", "O", "P"},
    "0119": {"AF", "CA", "CH", "CN", "CR", "DC", "DE", "DF", "DR", "FU", "HD", "HR", "LI", "NA",
             "NW", "OC", "OD", "OE", "OF", "OH", "OK", "OP", "OR", "PA", "RE", "RF", "RL", "RO",
             "RP", "RQ", "RR", "RU", "SC", "SN", "SR", "SS", "UA", "UC", "UD", "UF", "UH", "UM",
             "UN", "UR", "UX", "XO", "XR", "XX"},
    "0123": {"A", "C", "F", "I", "O", "P", "R", "S", "X", "Y", "Z"},
    "0125": {"AD", "CE", "CF", "CK", "CN", "CP", "CWE", "CX", "DT", "ED", "FT", "MO", "NM", "PN",
             "RP", "SN", "ST", "TM", "TN", "TS", "TX", "XAD", "XCN", "XON", "XPN", "XTN"},
    "0136": {"Y", "N"},
    "0200": {"A", "B", "C", "D", "I", "L", "M", "N", "P", "R", "S", "T", "U"},
    "0203": {"MR", "PI", "PT", "AN", "PN", "PRN", "EI", "NI", "U"},
    "0211": {"ASCII", "8859/1", "8859/15", "UNICODE", "UNICODE UTF-8", "UNICODE UTF-16",
             "UNICODE UTF-32"},
    "0357": {"0", "100", "101", "102", "103", "200", "201", "202", "203", "204", "205", "206",
             "207"},
    "0364": {"1R", "2R", "AI", "DR", "GI", "GR", "PI", "RE"},
    # Specimen types this profile may name (a subset of 0487's codes).
    "0487": {"BLD", "BLDA", "BLDV", "BLDC", "SER", "PLAS", "PLB", "PPP", "PRP", "RBC", "WB"},
    "0516": {"W", "I", "E"},
}

# (segment, field) -> (maximum length, required, table or None, data type). From the v2.5.1
# segment attribute tables. Data types drive the format checks below.
FIELDS = {
    ("MSH", 7): (26, True, None, "TS"),
    ("MSH", 9): (15, True, None, "MSG"),
    ("MSH", 10): (20, True, None, "ST"),
    ("MSH", 11): (3, True, "0103", "PT"),
    ("MSH", 12): (60, True, "0104", "VID"),
    ("MSH", 18): (16, False, "0211", "ID"),
    ("MSH", 21): (427, False, None, "EI"),
    ("PID", 1): (4, False, None, "SI"),
    ("PID", 3): (250, True, None, "CX"),
    ("PID", 5): (250, True, None, "XPN"),
    # A TS whose precision is the day (the birth date).
    ("PID", 7): (26, False, None, "DATE"),
    ("PID", 8): (1, False, "0001", "IS"),
    ("ORC", 1): (2, True, "0119", "ID"),
    ("ORC", 2): (22, False, None, "EI"),
    ("ORC", 3): (22, False, None, "EI"),
    ("ORC", 5): (2, False, "0038", "ID"),
    ("OBR", 1): (4, False, None, "SI"),
    ("OBR", 2): (22, False, None, "EI"),
    ("OBR", 3): (22, False, None, "EI"),
    ("OBR", 4): (250, True, None, "CE"),
    ("OBR", 7): (26, False, None, "TS"),
    ("OBR", 22): (26, False, None, "TS"),
    ("OBR", 25): (1, False, "0123", "ID"),
    ("OBR", 32): (200, False, None, "NDL"),
    ("OBX", 1): (4, False, None, "SI"),
    ("OBX", 2): (3, False, "0125", "ID"),
    ("OBX", 3): (250, True, None, "CE"),
    ("OBX", 4): (20, False, None, "ST"),
    # Varies with OBX-2: coded values are checked in check() where OBX-2 is known.
    ("OBX", 5): (65536, False, None, "VARIES"),
    ("OBX", 8): (5, False, "0078", "IS"),
    ("OBX", 9): (5, False, None, "NM"),
    ("OBX", 11): (1, True, "0085", "ID"),
    ("OBX", 14): (26, False, None, "TS"),
    ("OBX", 16): (250, False, None, "XCN"),
    ("OBX", 17): (250, False, None, "CE"),
    ("OBX", 18): (22, False, None, "EI"),
    ("OBX", 19): (26, False, None, "TS"),
    ("NTE", 1): (4, False, None, "SI"),
    ("NTE", 2): (8, False, "0105", "ID"),
    ("NTE", 3): (65536, False, None, "FT"),
    ("NTE", 4): (250, False, None, "CE"),
    ("SPM", 1): (4, False, None, "SI"),
    ("SPM", 2): (80, False, None, "EIP"),
    ("SPM", 4): (250, True, None, "CWE"),
    ("MSA", 1): (2, True, "0008", "ID"),
    ("MSA", 2): (20, True, None, "ST"),
    ("MSA", 3): (80, False, None, "ST"),
    ("ERR", 3): (705, True, None, "CWE"),
    ("ERR", 4): (2, True, "0516", "ID"),
}

# Fields v2.5.1 reserves for harmonization with v2.6: they must stay empty.
RESERVED = {("OBX", 20), ("OBX", 21), ("OBX", 22)}

# Which coded components sit where, and their table: (segment, field, component) -> table.
COMPONENT_TABLES = {
    ("PID", 3, 5): "0203",
    ("PID", 5, 7): "0200",
    ("NTE", 4, 1): "0364",
    ("ERR", 3, 1): "0357",
}

TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})([+-])(\d{2})(\d{2})$")
DT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
CODING_SYSTEM = re.compile(r"^(99[A-Z0-9]{1,3}|HL7\d{4}|L|LN|SCT|I10|ISO\d+)$")
ESCAPE = re.compile(r"\\(F|S|T|R|E|\.br|X[0-9A-Fa-f]+|H|N)\\")


def unescape(v):
    """The data characters of an encoded value (escape sequences count as one)."""
    return ESCAPE.sub("x", v)


def bad_escapes(v):
    rest = ESCAPE.sub("", v)
    return "\\" in rest


def valid_ts(v, problems, where):
    m = TS.match(v)
    if not m:
        problems.append(f"{where}: {v!r} is not YYYYMMDDHHMMSS+ZZZZ")
        return
    y, mo, d, h, mi, s, sign, oh, om = m.groups()
    try:
        date(int(y), int(mo), int(d))
    except ValueError:
        problems.append(f"{where}: {v!r} is not a calendar date")
    if int(h) > 23 or int(mi) > 59 or int(s) > 59 or int(oh) > 14 or int(om) > 59:
        problems.append(f"{where}: {v!r} has an impossible time or offset")


def check_coded(seg, n, comps, problems, where):
    """CE/CWE: a coding system in component 3 (and 6) must be a 0396 name, and an HL7 table
    named there must hold the code."""
    for code_i, sys_i in ((0, 2), (3, 5)):
        if len(comps) <= sys_i or not comps[sys_i]:
            continue
        system = comps[sys_i]
        if not CODING_SYSTEM.match(system):
            problems.append(f"{where}: coding system {system!r} is not in table 0396")
        table = system[3:] if system.startswith("HL7") else None
        if table and table in TABLES and comps[code_i] not in TABLES[table]:
            problems.append(f"{where}: {comps[code_i]!r} is not in HL7 table {table}")
        if not comps[code_i]:
            problems.append(f"{where}: a coding system without a code")


def check_field(seg, n, value, problems):
    where = f"{seg}-{n}"
    spec = FIELDS.get((seg, n))
    if (seg, n) in RESERVED and value:
        problems.append(f"{where}: reserved in v2.5.1 (harmonization with v2.6), must be empty")
    if spec is None:
        return
    max_len, _, table, dtype = spec
    if bad_escapes(value):
        problems.append(f"{where}: a backslash outside a known escape sequence")
    for rep in value.split("~") if value else []:
        if len(unescape(rep)) > max_len:
            problems.append(f"{where}: {len(unescape(rep))} characters, at most {max_len}")
        comps = rep.split("^")
        if table and rep not in TABLES[table]:
            problems.append(f"{where}: {rep!r} is not in HL7 table {table}")
        if dtype == "TS":
            valid_ts(comps[0], problems, where)
        elif dtype == "DATE":
            m = DT.match(comps[0])
            try:
                date(*map(int, m.groups())) if m else date(0, 0, 0)
            except ValueError:
                problems.append(f"{where}: {comps[0]!r} is not a date YYYYMMDD")
        elif dtype == "SI" and not re.match(r"^[1-9]\d*$", rep):
            problems.append(f"{where}: {rep!r} is not a set id")
        elif dtype == "NM" and not re.match(r"^[+-]?(\d+(\.\d*)?|\.\d+)$", rep):
            problems.append(f"{where}: {rep!r} is not a number")
        elif dtype in ("CE", "CWE"):
            check_coded(seg, n, comps, problems, where)
        for (s, f, c), t in COMPONENT_TABLES.items():
            if (s, f) == (seg, n) and len(comps) >= c and comps[c - 1]:
                if comps[c - 1] not in TABLES[t]:
                    problems.append(f"{where}.{c}: {comps[c - 1]!r} is not in HL7 table {t}")
        if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", rep):
            problems.append(f"{where}: a control character")


def segments(text):
    if "\n" in text:
        return None
    if not text.endswith("\r"):
        return None
    out = []
    for line in text[:-1].split("\r"):
        name = line[:3]
        if name == "MSH":
            # MSH-1 is the separator itself: number the fields as the standard does.
            fields = ["|"] + line[4:].split("|")
        else:
            fields = line[4:].split("|") if len(line) > 3 else []
        out.append((name, fields))
    return out


def check(text):
    """Problems with one message (empty: it passes)."""
    problems = []
    segs = segments(text)
    if segs is None:
        return ["segments must each end with CR and no LF may appear"]
    if not segs or segs[0][0] != "MSH":
        return ["the message must start with MSH"]
    names = [s for s, _ in segs]
    msh = segs[0][1]
    msg_type = msh[8] if len(msh) > 8 else ""
    for name, fields in segs:
        for i, value in enumerate(fields, start=1):
            if name == "MSH" and i <= 2:
                continue
            check_field(name, i, value, problems)
        for (seg, n), (_, required, _, _) in FIELDS.items():
            if seg == name and required and (len(fields) < n or not fields[n - 1]):
                problems.append(f"{seg}-{n}: required, missing")
        if name == "OBX":
            value = fields[4] if len(fields) > 4 else ""
            vtype = fields[1] if len(fields) > 1 else ""
            if value and not vtype:
                problems.append("OBX-2: required when OBX-5 is valued")
            if vtype in ("CE", "CWE"):
                for rep in value.split("~") if value else []:
                    check_coded("OBX", 5, rep.split("^"), problems, "OBX-5")
            elif vtype == "NM" and value and not re.match(r"^[+-]?\d+(\.\d*)?$", value):
                problems.append(f"OBX-5: {value!r} is not a number")
    if msh[1] != "^~\\&":
        problems.append("MSH-2: encoding characters must be ^~\\&")
    if msg_type in ("ORU^R01^ORU_R01", "OUL^R22^OUL_R22"):
        for need in ("OBR", "OBX", "SPM"):
            if need not in names:
                problems.append(f"{need}: a result message must carry it")
        if len(msh) > 11 and msh[11] != "2.5.1":
            problems.append("MSH-12: this profile is v2.5.1")
    elif not msg_type.startswith("ACK"):
        problems.append(f"MSH-9: {msg_type!r} is not a message this profile sends")
    return problems
