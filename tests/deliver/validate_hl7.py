"""Validates HL7 v2.5.1 messages two ways: hl7apy's strict structure check (an independent
implementation), and the value-level checks of hl7_values.py (required fields, lengths, coded
values against their HL7 tables, timestamps, reserved fields).

Usage: validate_hl7.py FILE...  Each file holds one message with CR segment terminators.
Prints one line per file (`FILE: valid ...` or `FILE: INVALID: ...`); exits non-zero when any
message does not parse, does not validate strictly against its v2.5.1 structure, or breaks a
value rule.
"""
import os
import sys

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hl7_values  # noqa: E402


def main(paths):
    failed = 0
    for path in paths:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        problems = hl7_values.check(text)
        try:
            msg = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
            msg.validate()
            name = f"{msg.name} ({msg.version})"
        except Exception as e:  # hl7apy raises several unrelated exception types
            problems.insert(0, f"hl7apy: {type(e).__name__}: {e}")
        if problems:
            failed += 1
            print(f"{path}: INVALID: " + "; ".join(problems))
        else:
            print(f"{path}: valid {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
