#!/usr/bin/env bash
# testdb.sh - throwaway PostgreSQL (with PgBouncer in front) and MariaDB
# servers for wharf's tests and benchmarks.
#
# Usage:
#   scripts/testdb.sh run [--postgres] [--pgbouncer] [--mysql] [--] CMD [ARGS...]
#       Start the requested servers (all when no flag is given), export
#       WHARF_TEST_POSTGRES_URL / WHARF_TEST_PGBOUNCER_URL /
#       WHARF_TEST_MYSQL_URL, run CMD, then stop the servers, delete their
#       directories and exit with CMD's exit status.
#   scripts/testdb.sh start [--postgres] [--pgbouncer] [--mysql]
#       Start the servers and leave them running. Prints `export ...` lines on
#       stdout (use: eval "$(scripts/testdb.sh start)") and the stop command.
#   scripts/testdb.sh stop DIR
#       Stop servers started by `start` and delete DIR.
#
# --pgbouncer starts PgBouncer (Debian's pgbouncer) in transaction pooling
# mode in front of the PostgreSQL server (and so implies --postgres). Its
# [databases] section is `* = host=... port=...`: any database name is
# forwarded to that server, as the same user with the same password.
#
# A URL already set in the environment is passed through and that server is
# not started (PgBouncer is then started in front of the given PostgreSQL
# URL). Missing servers are installed with apt-get when running as root;
# otherwise the tests for them are skipped (loud notice on stderr), except
# with CI=true, where a server that cannot be installed or started is a hard
# failure.
#
# Environment:
#   WHARF_TEST_POSTGRES_URL, WHARF_TEST_MYSQL_URL  use these servers instead
#   WHARF_TEST_PGBOUNCER_URL  use this pooler instead of starting PgBouncer
#   WHARF_TESTDB_FAST=1     no fsync / synchronous_commit / full_page_writes
#                           (postgres), innodb_flush_log_at_trx_commit=2 and no
#                           doublewrite (mariadb): faster, not crash-safe
#   WHARF_TESTDB_TIMEOUT    seconds to wait for a server to be ready (60)
#   CI=true                 failing to provide a server is fatal
#
# Servers listen on 127.0.0.1 only, on free ports, with their sockets and data
# in a private directory under /tmp (wharf-testdb.XXXXXX); user, password and
# database are all "wharf" (superuser / ALL PRIVILEGES WITH GRANT OPTION).
# PgBouncer has no Unix socket.
set -euo pipefail

PROG=${0##*/}
TIMEOUT=${WHARF_TESTDB_TIMEOUT:-60}
FAST=${WHARF_TESTDB_FAST:-0}
IS_CI=0
case "${CI:-}" in true | 1 | yes) IS_CI=1 ;; esac
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

DB_USER=wharf
DB_PASS=wharf
DB_NAME=wharf
MARKER=.wharf-testdb

STATE=""          # state directory of this invocation
KEEP=0            # 1: leave servers running on exit (start)
APT_UPDATED=0
POLICY_CREATED=0  # 1: we created /usr/sbin/policy-rc.d and must remove it

log() { printf 'testdb: %s\n' "$*" >&2; }
die() {
	printf 'testdb: ERROR: %s\n' "$*" >&2
	exit 1
}
usage() { # usage [STATUS]: help on stderr (stdout when STATUS is 0)
	if [ "${1:-2}" = 0 ]; then
		sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"
	else
		sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
	fi
	exit "${1:-2}"
}

# unavailable NAME REASON: a server cannot be provided. Fatal under CI,
# otherwise a loud notice and the tests for it are skipped.
unavailable() {
	local name=$1 reason=$2
	if [ "$IS_CI" = 1 ]; then
		die "$name not available: $reason (CI=true: a database server that cannot be installed or started is fatal)"
	fi
	printf '\n*** %s not available: %s; tests for it will be skipped ***\n\n' "$name" "$reason" >&2
}

# tail_log FILE...: show the end of server logs after a failure.
tail_log() {
	local f
	for f in "$@"; do
		[ -s "$f" ] || continue
		printf -- '----- last lines of %s -----\n' "$f" >&2
		tail -n 40 "$f" >&2 || true
		printf -- '-----\n' >&2
	done
}

free_port() {
	local p="" i
	if command -v python3 >/dev/null 2>&1; then
		p=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()' 2>/dev/null) || p=""
	fi
	if ! [[ $p =~ ^[0-9]+$ ]]; then
		# bash fallback: a random high port nobody is listening on
		p=""
		for ((i = 0; i < 200; i++)); do
			local c=$((20000 + (RANDOM * 32768 + RANDOM) % 30000))
			if ! (exec 3<>"/dev/tcp/127.0.0.1/$c") 2>/dev/null; then
				p=$c
				break
			fi
		done
	fi
	[ -n "$p" ] || die "could not find a free TCP port"
	printf '%s\n' "$p"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# run_as USER CMD...: run CMD as USER when we are root and USER is set.
run_as() {
	local user=$1
	shift
	if [ -n "$user" ] && [ "$IS_ROOT" = 1 ] && [ "$user" != root ]; then
		(cd / && runuser -u "$user" -- "$@")
	else
		"$@"
	fi
}

# ---------------------------------------------------------------- installing

apt_install() {
	[ "$IS_ROOT" = 1 ] || return 1
	command -v apt-get >/dev/null 2>&1 || return 1
	local aptlog=${STATE:-/tmp}/apt.log rc=0
	log "installing $* with apt-get (log: $aptlog)"
	# Keep the packages' init scripts from starting system services during
	# the install: we run our own servers on our own ports and sockets.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# created by wharf scripts/testdb.sh during apt-get install\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		POLICY_CREATED=1
	fi
	if [ "$APT_UPDATED" = 0 ]; then
		if apt-get -o DPkg::Lock::Timeout=600 update >>"$aptlog" 2>&1; then
			APT_UPDATED=1
		else
			rc=$?
		fi
	fi
	if [ "$rc" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
			--no-install-recommends "$@" >>"$aptlog" 2>&1 || rc=$?
	fi
	remove_policy
	if [ "$rc" != 0 ]; then
		tail_log "$aptlog"
		return 1
	fi
	return 0
}

remove_policy() {
	if [ "$POLICY_CREATED" = 1 ]; then
		rm -f /usr/sbin/policy-rc.d
		POLICY_CREATED=0
	fi
}

# ---------------------------------------------------------------- postgres

# Highest /usr/lib/postgresql/N/bin with a server, else the one on PATH.
pg_find_bindir() {
	local d v best="" bestv=-1
	for d in /usr/lib/postgresql/*/bin; do
		if [ ! -x "$d/postgres" ] || [ ! -x "$d/initdb" ] || [ ! -x "$d/pg_ctl" ]; then
			continue
		fi
		v=${d#/usr/lib/postgresql/}
		v=${v%/bin}
		v=${v%%.*}
		[[ $v =~ ^[0-9]+$ ]] || continue
		if [ "$v" -gt "$bestv" ]; then
			bestv=$v
			best=$d
		fi
	done
	if [ -z "$best" ] && command -v pg_ctl >/dev/null 2>&1; then
		d=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
		[ -x "$d/postgres" ] && [ -x "$d/initdb" ] && best=$d
	fi
	[ -n "$best" ] && printf '%s\n' "$best"
}

pg_tool() { # pg_tool BINDIR NAME: a client tool, from BINDIR or PATH
	if [ -x "$1/$2" ]; then printf '%s\n' "$1/$2"; else command -v "$2"; fi
}

# start_postgres: sets PG_URL on success; returns 1 if unavailable (non-CI).
start_postgres() {
	local t0 bindir runas="" dir data port pglog psql isready version attempt ok
	t0=$(now)
	bindir=$(pg_find_bindir) || bindir=""
	if [ -z "$bindir" ]; then
		if [ "$IS_ROOT" = 1 ]; then
			apt_install postgresql || {
				unavailable PostgreSQL "apt-get install postgresql failed"
				return 1
			}
			bindir=$(pg_find_bindir) || bindir=""
			t0=$(now)
			[ -n "$bindir" ] || {
				unavailable PostgreSQL "no server binaries found after installing postgresql"
				return 1
			}
		else
			unavailable PostgreSQL "no postgres server binaries (install the postgresql package, or run as root to have $PROG install it)"
			return 1
		fi
	fi
	psql=$(pg_tool "$bindir" psql) || psql=""
	isready=$(pg_tool "$bindir" pg_isready) || isready=""
	if [ -z "$psql" ] || [ -z "$isready" ]; then
		unavailable PostgreSQL "psql / pg_isready not found"
		return 1
	fi
	version=$("$bindir/postgres" --version | awk '{print $3}')
	version=${version%%.*}

	dir=$STATE/pg
	data=$dir/data
	pglog=$dir/postgres.log
	mkdir -p "$dir"
	if [ "$IS_ROOT" = 1 ]; then
		# postgres refuses to run as root
		runas=postgres
		id -u "$runas" >/dev/null 2>&1 || {
			unavailable PostgreSQL "running as root but there is no '$runas' user to run the server as"
			return 1
		}
	fi
	printf '%s\n' "$bindir" >"$dir/bindir"
	printf '%s\n' "$runas" >"$dir/runas"
	printf '%s\n' "$DB_PASS" >"$dir/pwfile"
	[ -n "$runas" ] && chown -R "$runas" "$dir"
	chmod 700 "$dir"

	if ! run_as "$runas" "$bindir/initdb" -D "$data" -U "$DB_USER" --pwfile="$dir/pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync \
		>"$dir/initdb.log" 2>&1; then
		tail_log "$dir/initdb.log"
		unavailable PostgreSQL "initdb failed"
		return 1
	fi
	rm -f "$dir/pwfile"
	{
		printf '\n# wharf scripts/testdb.sh\n'
		printf "listen_addresses = '127.0.0.1'\n"
		printf "unix_socket_directories = '%s'\n" "$dir"
		printf 'max_connections = 300\n'
		printf 'shared_buffers = 256MB\n'
		printf 'max_wal_size = 4GB\n'
		if [ "$FAST" = 1 ]; then
			printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n'
		fi
	} >>"$data/postgresql.conf"

	ok=0
	for attempt in 1 2 3; do
		port=$(free_port)
		if run_as "$runas" "$bindir/pg_ctl" start -D "$data" -l "$pglog" -w -t "$TIMEOUT" \
			-o "-p $port" >>"$dir/pg_ctl.log" 2>&1; then
			ok=1
			break
		fi
		# pg_ctl may have given up on a server that is still starting
		run_as "$runas" "$bindir/pg_ctl" stop -D "$data" -m immediate -w -t 30 >/dev/null 2>&1 || true
		grep -qi 'already in use' "$pglog" 2>/dev/null || break
		log "postgres: port $port taken, retrying ($attempt)"
	done
	if [ "$ok" = 1 ]; then
		# ready on TCP, not only on the socket
		local deadline=$((SECONDS + TIMEOUT))
		until "$isready" -q -h 127.0.0.1 -p "$port" -d postgres; do
			if [ "$SECONDS" -ge "$deadline" ]; then
				echo "testdb: pg_isready -h 127.0.0.1 -p $port: not ready after ${TIMEOUT}s" >>"$dir/pg_ctl.log"
				ok=0
				break
			fi
			sleep 0.1
		done
	fi
	if [ "$ok" = 1 ]; then
		PGPASSWORD=$DB_PASS "$psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$DB_USER" \
			-d postgres -c "CREATE DATABASE $DB_NAME" >>"$dir/pg_ctl.log" 2>&1 || ok=0
	fi
	if [ "$ok" = 1 ]; then
		PG_URL="postgres://$DB_USER:$DB_PASS@127.0.0.1:$port/$DB_NAME?sslmode=disable"
		"$psql" -X -q -At -c 'select 1' "$PG_URL" >/dev/null 2>>"$dir/pg_ctl.log" || ok=0
	fi
	if [ "$ok" != 1 ]; then
		tail_log "$dir/pg_ctl.log" "$pglog"
		stop_postgres "$STATE"
		PG_URL=""
		unavailable PostgreSQL "server did not start (see log above)"
		return 1
	fi
	log "postgres $version listening on 127.0.0.1:$port (started in $(elapsed "$t0"), data in $data)"
}

stop_postgres() {
	local dir=$1/pg bindir runas pid
	[ -d "$dir/data" ] && [ -f "$dir/bindir" ] || return 0
	bindir=$(cat "$dir/bindir")
	runas=$(cat "$dir/runas" 2>/dev/null || true)
	[ -f "$dir/data/postmaster.pid" ] || return 0
	pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
	[[ $pid =~ ^[0-9]+$ ]] || pid=""
	if run_as "$runas" "$bindir/pg_ctl" stop -D "$dir/data" -m fast -w -t 30 >/dev/null 2>&1 ||
		run_as "$runas" "$bindir/pg_ctl" stop -D "$dir/data" -m immediate -w -t 30 >/dev/null 2>&1; then
		# pg_ctl returns once postmaster.pid is gone; let the process exit too
		[ -z "$pid" ] || wait_pid_gone "$pid" 10 || true
		return 0
	fi
	if [ -n "$pid" ] && pid_alive "$pid"; then
		log "postgres did not stop, killing pid $pid"
		kill -KILL "$pid" 2>/dev/null || true
		wait_pid_gone "$pid" 10 || true
	fi
}

# ---------------------------------------------------------------- pgbouncer

# url_decode S: S with its %XX escapes decoded.
url_decode() {
	local s=${1//\\/\\\\}
	printf '%b' "${s//%/\\x}"
}

# parse_pg_url URL: sets U_USER U_PASS U_HOST U_PORT from a postgres:// URL
# of the form user[:password]@host[:port]/db[?...].
parse_pg_url() {
	local re='^postgres(ql)?://([^:@/]+)(:([^@/]*))?@([^:/?]+)(:([0-9]+))?/[^/?#]+'
	[[ $1 =~ $re ]] || return 1
	U_USER=$(url_decode "${BASH_REMATCH[2]}")
	U_PASS=$(url_decode "${BASH_REMATCH[4]}")
	U_HOST=${BASH_REMATCH[5]}
	U_PORT=${BASH_REMATCH[7]:-5432}
}

# pgb_ready URL PORT: PgBouncer answers on PORT: a query through it to the
# server when psql is at hand, else an open TCP port.
pgb_ready() {
	local psql
	psql=$(command -v psql 2>/dev/null || true)
	if [ -z "$psql" ] && [ -f "$STATE/pg/bindir" ]; then
		psql=$(pg_tool "$(cat "$STATE/pg/bindir")" psql 2>/dev/null || true)
	fi
	if [ -n "$psql" ]; then
		"$psql" -X -q -At -c 'select 1' "$1" >/dev/null 2>&1
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null
	fi
}

# start_pgbouncer PGURL: PgBouncer in transaction pooling mode in front of
# the server of PGURL; sets PGB_URL (PGURL with PgBouncer's address) on
# success; returns 1 if unavailable (non-CI).
start_pgbouncer() {
	local pgurl=$1 t0 bin dir runas="" port attempt ok pid version deadline q
	t0=$(now)
	if ! parse_pg_url "$pgurl"; then
		unavailable PgBouncer "cannot read the user, host and port of the PostgreSQL URL"
		return 1
	fi
	bin=$(find_first pgbouncer) || bin=""
	if [ -z "$bin" ]; then
		if [ "$IS_ROOT" = 1 ]; then
			apt_install pgbouncer || {
				unavailable PgBouncer "apt-get install pgbouncer failed"
				return 1
			}
			t0=$(now)
			bin=$(find_first pgbouncer) || {
				unavailable PgBouncer "no pgbouncer binary found after installing pgbouncer"
				return 1
			}
		else
			unavailable PgBouncer "no pgbouncer binary (install the pgbouncer package, or run as root to have $PROG install it)"
			return 1
		fi
	fi
	version=$("$bin" --version 2>/dev/null | awk 'NR == 1 { print $NF }')

	dir=$STATE/pgb
	mkdir -p "$dir"
	if [ "$IS_ROOT" = 1 ]; then
		# pgbouncer refuses to run as root
		runas=postgres
		id -u "$runas" >/dev/null 2>&1 || {
			unavailable PgBouncer "running as root but there is no '$runas' user to run pgbouncer as"
			return 1
		}
	fi
	# Clients log in as the server's user with its password; PgBouncer
	# checks them against this file and logs in to the server with the same.
	printf '"%s" "%s"\n' "${U_USER//\"/\"\"}" "${U_PASS//\"/\"\"}" >"$dir/userlist.txt"
	chmod 600 "$dir/userlist.txt"

	ok=0
	for attempt in 1 2 3; do
		port=$(free_port)
		# Only the start-up parameter lib/pq-style clients add is ignored;
		# any other (search_path, plan_cache_mode) is refused loudly, since
		# PgBouncer could not keep it per client.
		cat >"$dir/pgbouncer.ini" <<-INI
			; wharf scripts/testdb.sh
			[databases]
			* = host=$U_HOST port=$U_PORT

			[pgbouncer]
			listen_addr = 127.0.0.1
			listen_port = $port
			unix_socket_dir =
			pool_mode = transaction
			auth_type = scram-sha-256
			auth_file = $dir/userlist.txt
			admin_users = $U_USER
			max_client_conn = 2000
			default_pool_size = 40
			server_idle_timeout = 30
			ignore_startup_parameters = extra_float_digits
			logfile = $dir/pgbouncer.log
			pidfile = $dir/pgbouncer.pid
			log_connections = 0
			log_disconnections = 0
		INI
		[ -n "$runas" ] && chown -R "$runas" "$dir"
		chmod 700 "$dir"
		rm -f "$dir/pgbouncer.pid"
		q=$(printf '%s\n' "$pgurl" | sed -E "s#^(postgres(ql)?://[^@/]*@)[^/]*/#\\1127.0.0.1:$port/#")
		deadline=$((SECONDS + TIMEOUT))
		# -d: in the background, with the pidfile and logfile of the config
		if ! run_as "$runas" "$bin" -d -q "$dir/pgbouncer.ini" >>"$dir/start.log" 2>&1; then
			echo "testdb: pgbouncer -d exited with an error" >>"$dir/start.log"
			deadline=0
		fi
		while :; do
			pid=$(head -n 1 "$dir/pgbouncer.pid" 2>/dev/null || true)
			if [[ $pid =~ ^[0-9]+$ ]] && pgb_ready "$q" "$port"; then
				ok=1
				break
			fi
			if [[ $pid =~ ^[0-9]+$ ]] && ! pid_alive "$pid"; then
				echo "testdb: pgbouncer exited during start-up" >>"$dir/start.log"
				break
			fi
			if [ "$SECONDS" -ge "$deadline" ]; then
				[ "$deadline" = 0 ] || echo "testdb: pgbouncer not ready after ${TIMEOUT}s" >>"$dir/start.log"
				break
			fi
			sleep 0.1
		done
		[ "$ok" = 1 ] && break
		stop_pgbouncer "$STATE"
		grep -qi 'address already in use' "$dir/pgbouncer.log" "$dir/start.log" 2>/dev/null || break
		log "pgbouncer: port $port taken, retrying ($attempt)"
	done
	if [ "$ok" != 1 ]; then
		tail_log "$dir/start.log" "$dir/pgbouncer.log"
		stop_pgbouncer "$STATE"
		PGB_URL=""
		unavailable PgBouncer "pgbouncer did not start (see log above)"
		return 1
	fi
	PGB_URL=$q
	log "pgbouncer ${version:-?} (transaction pooling) listening on 127.0.0.1:$port in front of $U_HOST:$U_PORT (started in $(elapsed "$t0"))"
}

stop_pgbouncer() {
	local dir=$1/pgb pid
	[ -f "$dir/pgbouncer.pid" ] || return 0
	pid=$(head -n 1 "$dir/pgbouncer.pid" 2>/dev/null || true)
	[[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 0
	[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = pgbouncer ] || return 0
	# SIGTERM: immediate shutdown (SIGINT would wait for clients to leave)
	kill -TERM "$pid" 2>/dev/null || true
	wait_pid_gone "$pid" 10 && return 0
	log "pgbouncer did not stop, killing pid $pid"
	kill -KILL "$pid" 2>/dev/null || true
	wait_pid_gone "$pid" 10 || true
}

# ---------------------------------------------------------------- mariadb

find_first() { # find_first NAME...: first executable found on PATH or in sbin
	local n d
	for n in "$@"; do
		if command -v "$n" >/dev/null 2>&1; then
			command -v "$n"
			return 0
		fi
		for d in /usr/sbin /usr/local/sbin /usr/libexec /usr/local/libexec; do
			if [ -x "$d/$n" ]; then
				printf '%s\n' "$d/$n"
				return 0
			fi
		done
	done
	return 1
}

my_find_tools() {
	MY_SERVER=$(find_first mariadbd mysqld) || MY_SERVER=""
	MY_INSTALL=$(find_first mariadb-install-db mysql_install_db) || MY_INSTALL=""
	MY_ADMIN=$(find_first mariadb-admin mysqladmin) || MY_ADMIN=""
	MY_CLIENT=$(find_first mariadb mysql) || MY_CLIENT=""
	[ -n "$MY_SERVER" ] && [ -n "$MY_INSTALL" ] && [ -n "$MY_ADMIN" ] && [ -n "$MY_CLIENT" ]
}

pid_alive() { # running, and not a zombie waiting to be reaped
	local st=""
	kill -0 "$1" 2>/dev/null || return 1
	st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null || true)
	[ "$st" != Z ]
}

wait_pid_gone() { # wait_pid_gone PID SECONDS
	local pid=$1 deadline=$((SECONDS + $2))
	while pid_alive "$pid"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

is_mysqld_pid() {
	local comm
	[[ $1 =~ ^[0-9]+$ ]] && pid_alive "$1" || return 1
	comm=$(cat "/proc/$1/comm" 2>/dev/null || true)
	case "$comm" in mariadbd | mysqld | setsid | "") return 0 ;; esac
	return 1
}

# start_mysql: sets MY_URL on success; returns 1 if unavailable (non-CI).
start_mysql() {
	local t0 dir data sock pidf mylog port attempt ok pid version deadline
	local -a userflag=()
	t0=$(now)
	if ! my_find_tools; then
		if [ "$IS_ROOT" = 1 ]; then
			apt_install mariadb-server mariadb-client || {
				unavailable MariaDB "apt-get install mariadb-server mariadb-client failed"
				return 1
			}
			t0=$(now)
			my_find_tools || {
				unavailable MariaDB "mariadbd / mariadb-install-db / mariadb-admin / mariadb not found after installing"
				return 1
			}
		else
			unavailable MariaDB "no mariadbd / mariadb-install-db / mariadb client (install mariadb-server and mariadb-client, or run as root to have $PROG install them)"
			return 1
		fi
	fi
	[ "$IS_ROOT" = 1 ] && userflag=(--user=root)
	version=$("$MY_SERVER" --no-defaults --version 2>/dev/null | sed -n 's/.*Ver \([0-9][0-9.]*\).*/\1/p')

	dir=$STATE/my
	data=$dir/data
	sock=$dir/mysqld.sock
	pidf=$dir/mysqld.pid
	mylog=$dir/mysqld.log
	mkdir -p "$dir/tmp"
	chmod 700 "$dir"
	printf '%s\n' "$MY_ADMIN" >"$dir/admin"

	if ! "$MY_INSTALL" --no-defaults --datadir="$data" "${userflag[@]}" \
		--auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
		>"$dir/install-db.log" 2>&1; then
		tail_log "$dir/install-db.log"
		unavailable MariaDB "mariadb-install-db failed"
		return 1
	fi

	local -a opts=(
		--no-defaults
		--datadir="$data"
		--socket="$sock"
		--pid-file="$pidf"
		--tmpdir="$dir/tmp"
		--log-error="$mylog"
		--bind-address=127.0.0.1
		--skip-networking=0
		--skip-name-resolve
		--innodb-buffer-pool-size=256M
		--max-connections=300
		--character-set-server=utf8mb4
		--collation-server=utf8mb4_unicode_ci
	)
	if [ "$FAST" = 1 ]; then
		opts+=(--innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0)
	else
		opts+=(--innodb-flush-log-at-trx-commit=1)
	fi
	opts+=("${userflag[@]}")

	ok=0
	for attempt in 1 2 3; do
		port=$(free_port)
		: >"$mylog"
		# own session: a Ctrl-C in the terminal must not reach the server
		setsid -w "$MY_SERVER" "${opts[@]}" --port="$port" </dev/null >>"$dir/mysqld.out" 2>&1 &
		pid=$!
		printf '%s\n' "$pid" >"$dir/launch.pid"
		deadline=$((SECONDS + TIMEOUT))
		while :; do
			if "$MY_ADMIN" --no-defaults --socket="$sock" -uroot --connect-timeout=2 ping >/dev/null 2>&1 &&
				[ -s "$pidf" ]; then
				ok=1
				break
			fi
			if ! pid_alive "$pid"; then
				echo "testdb: mariadbd exited during start-up" >>"$dir/setup.log"
				break
			fi
			if [ "$SECONDS" -ge "$deadline" ]; then
				echo "testdb: mariadbd not ready after ${TIMEOUT}s" >>"$dir/setup.log"
				kill -TERM "$pid" 2>/dev/null || true
				wait_pid_gone "$pid" 30 || kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.1
		done
		[ "$ok" = 1 ] && break
		wait "$pid" 2>/dev/null || true
		grep -qi 'already in use' "$mylog" 2>/dev/null || break
		log "mariadb: port $port taken, retrying ($attempt)"
	done
	if [ "$ok" = 1 ]; then
		"$MY_CLIENT" --no-defaults --socket="$sock" -uroot >>"$dir/setup.log" 2>&1 <<-SQL || ok=0
			CREATE USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
			CREATE USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
			GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1' WITH GRANT OPTION;
			GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
			CREATE DATABASE \`$DB_NAME\`;
			FLUSH PRIVILEGES;
		SQL
	fi
	if [ "$ok" = 1 ]; then
		"$MY_CLIENT" --no-defaults --protocol=tcp -h127.0.0.1 -P"$port" -u"$DB_USER" -p"$DB_PASS" \
			"$DB_NAME" -e 'select 1' >/dev/null 2>>"$dir/setup.log" || ok=0
	fi
	if [ "$ok" != 1 ]; then
		tail_log "$dir/install-db.log" "$dir/setup.log" "$dir/mysqld.out" "$mylog"
		stop_mysql "$STATE"
		MY_URL=""
		unavailable MariaDB "server did not start (see log above)"
		return 1
	fi
	MY_URL="mysql://$DB_USER:$DB_PASS@127.0.0.1:$port/$DB_NAME"
	log "mariadb ${version:-?} listening on 127.0.0.1:$port (started in $(elapsed "$t0"), data in $data)"
}

stop_mysql() {
	local dir=$1/my pid="" admin
	[ -d "$dir" ] || return 0
	[ -s "$dir/mysqld.pid" ] && pid=$(head -n 1 "$dir/mysqld.pid")
	if ! is_mysqld_pid "$pid"; then
		pid=$(cat "$dir/launch.pid" 2>/dev/null || true)
		is_mysqld_pid "$pid" || return 0
	fi
	admin=$(cat "$dir/admin" 2>/dev/null || true)
	if [ -n "$admin" ] && [ -S "$dir/mysqld.sock" ]; then
		"$admin" --no-defaults --socket="$dir/mysqld.sock" -uroot --connect-timeout=5 \
			shutdown >/dev/null 2>&1 || true
	fi
	wait_pid_gone "$pid" 60 && return 0
	kill -TERM "$pid" 2>/dev/null || true
	wait_pid_gone "$pid" 30 && return 0
	log "mariadb did not stop, killing pid $pid"
	kill -KILL "$pid" 2>/dev/null || true
	wait_pid_gone "$pid" 10 || true
}

# ---------------------------------------------------------------- state

stop_dir() {
	local d=$1
	[ -n "$d" ] && [ -d "$d" ] || return 0
	[ -e "$d/$MARKER" ] || die "$d is not a $PROG state directory (no $MARKER)"
	stop_pgbouncer "$d" || true
	stop_postgres "$d" || true
	stop_mysql "$d" || true
	rm -rf -- "$d"
}

cleanup() {
	local rc=$?
	trap '' INT TERM
	remove_policy
	if [ -n "$STATE" ] && [ "$KEEP" != 1 ]; then
		stop_dir "$STATE" || true
		STATE=""
	fi
	exit "$rc"
}

make_state() {
	local parent=${TMPDIR:-/tmp}
	# as root the server runs as "postgres", which must be able to reach it
	[ "$IS_ROOT" = 1 ] && parent=/tmp
	STATE=$(mktemp -d "$parent/wharf-testdb.XXXXXX")
	: >"$STATE/$MARKER"
	chmod 711 "$STATE"
}

# ensure_sqlite3: the sqlite3 client, which tests pipe exported migration
# scripts into (as they do into psql and mariadb). Installed as root when
# missing; without it those tests skip locally and fail under CI=true.
ensure_sqlite3() {
	command -v sqlite3 >/dev/null 2>&1 && return 0
	if [ "$IS_ROOT" = 1 ]; then
		apt_install sqlite3 || log "sqlite3: apt-get install sqlite3 failed"
	fi
	return 0
}

# start_servers WANT_PG WANT_PGB WANT_MY: fills PG_URL / PGB_URL / MY_URL
# (empty when skipped).
start_servers() {
	local want_pg=$1 want_pgb=$2 want_my=$3
	PG_URL=""
	PGB_URL=""
	MY_URL=""
	if [ "$want_pg" = 1 ]; then
		if [ -n "${WHARF_TEST_POSTGRES_URL:-}" ]; then
			log "postgres: using WHARF_TEST_POSTGRES_URL from the environment"
			PG_URL=$WHARF_TEST_POSTGRES_URL
		else
			start_postgres || true
		fi
	fi
	if [ "$want_pgb" = 1 ]; then
		if [ -n "${WHARF_TEST_PGBOUNCER_URL:-}" ]; then
			log "pgbouncer: using WHARF_TEST_PGBOUNCER_URL from the environment"
			PGB_URL=$WHARF_TEST_PGBOUNCER_URL
		elif [ -n "$PG_URL" ]; then
			start_pgbouncer "$PG_URL" || true
		else
			unavailable PgBouncer "no PostgreSQL server to put it in front of"
		fi
	fi
	if [ "$want_my" = 1 ] || [ "$want_pg" = 1 ]; then
		ensure_sqlite3
	fi
	if [ "$want_my" = 1 ]; then
		if [ -n "${WHARF_TEST_MYSQL_URL:-}" ]; then
			log "mariadb: using WHARF_TEST_MYSQL_URL from the environment"
			MY_URL=$WHARF_TEST_MYSQL_URL
		else
			start_mysql || true
		fi
	fi
}

# run_cmd CMD...: run CMD, pass INT/TERM/HUP on to it, exit with its status.
# CMD runs in the background so that a signal to this script alone (say, from
# `timeout`) is acted on at once rather than after CMD ends; it keeps our stdin
# and, through env --default-signal where available, a default SIGINT (bash
# makes background commands ignore it), so Ctrl-C reaches it as usual.
run_cmd() {
	local -a pre=()
	local intsig=INT rc
	if env "--default-signal=INT,QUIT" true >/dev/null 2>&1; then
		pre=(env "--default-signal=INT,QUIT")
	else
		intsig=TERM # CMD ignores SIGINT: stop it with TERM
	fi
	set +e
	"${pre[@]}" "$@" <&0 &
	CHILD=$!
	# shellcheck disable=SC2064 # expand intsig now
	trap "kill -$intsig \"\$CHILD\" 2>/dev/null" INT
	trap 'kill -TERM "$CHILD" 2>/dev/null' TERM HUP
	while :; do
		wait "$CHILD"
		rc=$?
		# wait returns early (>128) when a trapped signal arrives
		kill -0 "$CHILD" 2>/dev/null || break
	done
	set -e
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
	exit "$rc"
}

# ---------------------------------------------------------------- main

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
run | start)
	want_pg=0
	want_pgb=0
	want_my=0
	while [ $# -gt 0 ]; do
		case "$1" in
		--postgres | --pg) want_pg=1 ;;
		--pgbouncer) want_pg=1 want_pgb=1 ;;
		--mysql | --mariadb) want_my=1 ;;
		--)
			shift
			break
			;;
		-h | --help) usage 0 ;;
		-*) die "unknown option $1 (see $PROG --help)" ;;
		*) break ;;
		esac
		shift
	done
	if [ "$want_pg" = 0 ] && [ "$want_my" = 0 ]; then
		want_pg=1
		want_pgb=1
		want_my=1
	fi
	if [ "$cmd" = run ] && [ $# = 0 ]; then
		die "run: no command given (usage: $PROG run [--postgres] [--pgbouncer] [--mysql] -- CMD [ARGS...])"
	fi
	if [ "$cmd" = start ] && [ $# != 0 ]; then
		die "start: unexpected arguments: $*"
	fi

	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
	make_state
	start_servers "$want_pg" "$want_pgb" "$want_my"

	if [ "$cmd" = run ]; then
		if [ -n "$PG_URL" ]; then export WHARF_TEST_POSTGRES_URL=$PG_URL; else unset WHARF_TEST_POSTGRES_URL; fi
		if [ -n "$PGB_URL" ]; then export WHARF_TEST_PGBOUNCER_URL=$PGB_URL; else unset WHARF_TEST_PGBOUNCER_URL; fi
		if [ -n "$MY_URL" ]; then export WHARF_TEST_MYSQL_URL=$MY_URL; else unset WHARF_TEST_MYSQL_URL; fi
		run_cmd "$@"
	fi

	# start
	[ -n "$PG_URL" ] && printf "export WHARF_TEST_POSTGRES_URL='%s'\n" "$PG_URL"
	[ -n "$PGB_URL" ] && printf "export WHARF_TEST_PGBOUNCER_URL='%s'\n" "$PGB_URL"
	[ -n "$MY_URL" ] && printf "export WHARF_TEST_MYSQL_URL='%s'\n" "$MY_URL"
	if [ -d "$STATE/pg/data" ] || [ -d "$STATE/my/data" ] || [ -f "$STATE/pgb/pgbouncer.pid" ]; then
		KEEP=1
		printf '# state in %s; stop with: %s stop %s\n' "$STATE" "$0" "$STATE"
	fi
	exit 0
	;;
stop)
	[ $# = 1 ] || die "usage: $PROG stop DIR"
	d=${1%/}
	[ -d "$d" ] || die "$d: no such directory"
	stop_dir "$d"
	log "stopped and removed $d"
	;;
-h | --help | help) usage 0 ;;
*) usage ;;
esac
