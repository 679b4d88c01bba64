#!/bin/sh
# demo.sh BIN — the README's first command: run the rowcopy demo on SQLite,
# stop it half-way with SIGTERM as a platform would, and resume it.
set -u
bin=$1
db="sqlite:build/demo.db"
rm -f build/demo.db build/demo.db-wal build/demo.db-shm
export RATCHET_LOG=text
echo "== ratchet demo: copy 200,000 rows, one row per item, 20 us of work each"
echo "== \$ $bin --db $db run rowcopy --key demo --param rows=200000 --param item_us=20"
"$bin" --db "$db" run rowcopy --key demo --param rows=200000 --param item_us=20 &
pid=$!
sleep 2
echo "== sending SIGTERM, as Cloud Run, Heroku or Kubernetes would"
kill -TERM "$pid"
wait "$pid"
echo "== exit code $? (75 = interrupted, progress saved)"
"$bin" --db "$db" status
echo "== run it again: it resumes from the last commit"
"$bin" --db "$db" run rowcopy --key demo
code=$?
echo "== exit code $code"
"$bin" --db "$db" status
echo "== running a finished key again does nothing:"
"$bin" --db "$db" run rowcopy --key demo
exit "$code"
