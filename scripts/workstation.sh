#!/usr/bin/env bash
# `make workstation`: runs the demo (synthetic samples graded into the local database; about a
# third await review), gives the demo accounts fresh one-time passwords (printed here, never
# fixed anywhere), then keeps `iari serve` running on that data until Ctrl-C. Plain HTTP on
# http.addr (default 127.0.0.1:8080), so session cookies are not marked Secure.
set -euo pipefail
IARI=${1:-target/release/iari}
"$IARI" demo
export IARI__WORKSTATION__SECURE_COOKIES=false
existing=$("$IARI" users list | awk 'NR > 1 {print $1}')
echo
echo "Demo accounts (one-time passwords: each is replaced at its first sign-in):"
for spec in "demo.tech:technologist:Terry Tech" "demo.super:supervisor:Sam Super" \
            "demo.auditor:auditor:Alex Audit" "demo.admin:admin:Ada Admin"; do
  IFS=: read -r name role full <<<"$spec"
  if grep -qx "$name" <<<"$existing"; then
    "$IARI" users enable "$name" >/dev/null
    "$IARI" users reset-password "$name" --one-time
  else
    "$IARI" users add "$name" --role "$role" --full-name "$full" --one-time | tail -n 1
  fi
done
echo
exec "$IARI" serve
