#!/bin/sh
# Registers $CONNECTOR_FILE (deployments/debezium/outbox-connector.json,
# mounted read-only) with Kafka Connect at $CONNECT_URL, then waits until the
# connector and its task run. Idempotent: when the connector exists it is
# deleted and created again from the file, so a changed file takes effect;
# Connect keeps the connector's offsets and PostgreSQL its slot, so it resumes
# where it stopped.
set -eu
: "${CONNECT_URL:?}" "${CONNECTOR_NAME:?}" "${CONNECTOR_FILE:?}"
resp=/tmp/connect-response

tries=0
retry() {
	tries=$((tries + 1))
	if [ "$tries" -ge 60 ]; then
		echo "register-connector: giving up after $tries attempts" >&2
		exit 1
	fi
	sleep 2
}

while :; do
	code=$(curl -sS -o "$resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
		--data @"$CONNECTOR_FILE" "$CONNECT_URL/connectors") || code=000
	case "$code" in
	201)
		echo "register-connector: created $CONNECTOR_NAME from $CONNECTOR_FILE"
		break
		;;
	409)
		if grep -q 'already exists' "$resp"; then
			echo "register-connector: $CONNECTOR_NAME exists; re-creating it from $CONNECTOR_FILE"
			curl -sS -o /dev/null -X DELETE "$CONNECT_URL/connectors/$CONNECTOR_NAME" || true
		else # a rebalance is in progress
			echo "register-connector: Connect answered 409: $(cat "$resp")"
		fi
		;;
	*)
		echo "register-connector: POST /connectors answered $code: $(cat "$resp" 2>/dev/null || true)"
		;;
	esac
	retry
done

tries=0
while :; do
	status=$(curl -sS "$CONNECT_URL/connectors/$CONNECTOR_NAME/status" || true)
	case "$status" in
	*'"FAILED"'*)
		echo "register-connector: $CONNECTOR_NAME failed: $status" >&2
		exit 1
		;;
	esac
	# One "RUNNING" for the connector, one for its single task.
	if [ "$(printf '%s' "$status" | grep -o '"state":"RUNNING"' | wc -l)" -ge 2 ]; then
		echo "register-connector: $CONNECTOR_NAME is running"
		exit 0
	fi
	retry
done
