#!/bin/sh
# Compares two ways of keeping processed_messages bounded (ADR 0023):
# batched DELETE over the processed_at index, and a table partitioned by
# day whose old partitions are dropped. For each size it prints the bridge's
# dedup look-up cost per batch of 500 keys (the LATERAL probe of
# internal/bridge/store.go), then what pruning costs.
#
#   PGURL=postgres://root@127.0.0.1:5432/postgres SIZES="0 10000000 50000000" sh run.sh
#
# It creates and drops its own database, prune_strategy.
set -eu
PGURL=${PGURL:-postgres://root@127.0.0.1:5432/postgres}
SIZES=${SIZES:-"0 10000000 50000000"}
PARTED_MAX=${PARTED_MAX:-10000000} # the partitioned table is loaded up to this size
DB=prune_strategy
here=$(cd "$(dirname "$0")" && pwd)
base=${PGURL%/*}
url="$base/$DB"
psql -X -q "$PGURL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
trap 'psql -X -q "$PGURL" -c "DROP DATABASE IF EXISTS $DB"' EXIT
psql -X -q "$url" -f "$here/schema.sql"

bench() { # table rows
	sed "s/TABLE/$1/; s/NROWS/$2/" "$here/lookup.sql" > /tmp/prune_strategy_lookup.sql
	pgbench -n -f /tmp/prune_strategy_lookup.sql -T "${BENCH_SECONDS:-15}" -c 1 "$url" 2>/dev/null |
		awk -v t="$1" -v n="$2" '/latency average/ {print "lookup", t, n, "rows:", $4, "ms per batch of 500 keys"}'
}

loaded=0
for n in $SIZES; do
	if [ "$n" -gt "$loaded" ]; then
		# Rows spread evenly over the last 8 days, keys md5(i): lookup.sql
		# can name existing ones without reading the table.
		# Loading without the indexes and building them after is many times
		# faster than inserting random uuids into a large btree.
		start=$(date +%s)
		psql -X -q "$url" -c "ALTER TABLE pm_plain DROP CONSTRAINT pm_plain_pkey" -c "DROP INDEX pm_plain_processed_at_idx"
		psql -X -q "$url" -c "INSERT INTO pm_plain SELECT 'bridge', md5(i::text)::uuid,
			now() - interval '8 days' * (i::float8 / $n) FROM generate_series($loaded + 1, $n) i" \
			-c "ALTER TABLE pm_plain ADD PRIMARY KEY (consumer_name, event_id)" \
			-c "CREATE INDEX pm_plain_processed_at_idx ON pm_plain (processed_at)"
		echo "load pm_plain to $n rows: $(( $(date +%s) - start )) s"
		if [ "$n" -le "$PARTED_MAX" ]; then
			start=$(date +%s)
			psql -X -q "$url" -c "ALTER TABLE pm_parted DROP CONSTRAINT pm_parted_pkey"
			psql -X -q "$url" -c "INSERT INTO pm_parted SELECT 'bridge', md5(i::text)::uuid,
				now() - interval '8 days' * (i::float8 / $n) FROM generate_series($loaded + 1, $n) i" \
				-c "ALTER TABLE pm_parted ADD PRIMARY KEY (consumer_name, event_id, processed_at)"
			echo "load pm_parted to $n rows: $(( $(date +%s) - start )) s"
		fi
		psql -X -q "$url" -c "VACUUM ANALYZE"
		loaded=$n
	fi
	bench pm_plain "$n"
	[ "$n" -le "$PARTED_MAX" ] && bench pm_parted "$n"
	psql -X -qAt "$url" -c "SELECT 'size', t, pg_size_pretty(sum(pg_total_relation_size(relid))) FROM
		unnest(ARRAY['pm_plain', 'pm_parted']) t, pg_partition_tree(t::regclass) GROUP BY t"
done

# Prune one day's rows (an eighth of the table) from each, as the pruner
# would: batches of 1000 by the processed_at index, each its own
# transaction; and the partitioned table's way, one DROP.
echo "prune:"
psql -X -q "$url" -f "$here/prune.sql"
bench pm_plain "$loaded"
[ "$loaded" -le "$PARTED_MAX" ] && bench pm_parted "$loaded"
