#!/usr/bin/env bash
# Starts PostgreSQL and RabbitMQ when either is down, then waits until both answer.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
mq_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! pg_up; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! mq_up; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached || true
fi
for _ in $(seq 1 120); do
  if pg_up && mq_up; then
    # RabbitMQ accepts TCP before its AMQP layer is ready; wait for the application too.
    if command -v rabbitmqctl >/dev/null && ! rabbitmqctl -q await_startup >/dev/null 2>&1; then
      sleep 1; continue
    fi
    exit 0
  fi
  sleep 1
done
echo "services: PostgreSQL or RabbitMQ did not come up within 120 s" >&2
exit 1
