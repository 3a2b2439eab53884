"""Validates HL7 v2.5.1 messages with hl7apy (an independent implementation).

Usage: validate_hl7.py FILE...  Each file holds one message with CR segment terminators.
Exits non-zero, naming the file and hl7apy's complaint, when a message does not parse or does
not validate strictly against the v2.5.1 message structure.
"""
import sys

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message


def main(paths):
    failed = 0
    for path in paths:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        try:
            msg = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
            msg.validate()
            print(f"{path}: valid {msg.name} ({msg.version})")
        except Exception as e:  # hl7apy raises several unrelated exception types
            failed += 1
            print(f"{path}: INVALID: {type(e).__name__}: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
