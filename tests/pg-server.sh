#!/bin/sh
# pg-server.sh start|stop|restart|kill DIR — a throwaway PostgreSQL for tests.
#
#   start DIR    initdb into DIR/data, start it listening on a unix socket in
#                DIR only (no TCP) on a free port, and print its admin conninfo
#                ("host=DIR port=N user=postgres dbname=postgres").
#   restart DIR  a fast restart (every session is dropped), same port.
#   stop DIR     a fast shutdown.
#
# initdb refuses root: as root, the server runs as the unprivileged
# 'postgres' user (DIR is handed to it). Durability is off (fsync=off): the
# tests crash ratchet, never the server's machine. PG_SERVER_DURABLE=1 in the
# environment of 'start' keeps PostgreSQL's durable defaults instead (fsync,
# full_page_writes and synchronous_commit on), for honest commit timings
# (make bench).
set -eu
cmd=$1
dir=$2
bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && bindir=$d
    done
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
    echo "pg-server.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
    exit 1
fi

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pgctl() {
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 "$@"
}

case $cmd in
start)
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    chmod 0700 "$dir"
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync \
        -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # The socket lives in DIR, so any port number is free of clashes with
    # other servers; pick one at random and try another if it fails anyway.
    durability="-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    if [ "${PG_SERVER_DURABLE:-0}" = 1 ]; then
        durability="-c fsync=on -c full_page_writes=on -c synchronous_commit=on"
    fi
    for attempt in 1 2 3 4 5; do
        port=$(( 20000 + ($$ * 7 + attempt * 7919 + $(date +%N | sed 's/^0*//;s/^$/0/') ) % 40000 ))
        if pgctl start -o "-p $port -k $dir -c listen_addresses= $durability \
                -c max_connections=200" >/dev/null 2>&1; then
            echo "$port" >"$dir/port"
            echo "host=$dir port=$port user=postgres dbname=postgres"
            exit 0
        fi
    done
    cat "$dir/server.log" >&2
    exit 1
    ;;
restart) pgctl restart -m fast >/dev/null ;;
stop) pgctl stop -m fast >/dev/null ;;
*) echo "usage: pg-server.sh start|stop|restart DIR" >&2; exit 2 ;;
esac
