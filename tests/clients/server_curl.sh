#!/usr/bin/env bash
# The README's server steps, run for real: the release or debug binary, a config made
# from config/server.example.toml, `server add-account`, the server on a loopback port
# with its development CA, and curl (Debian's) querying it over verified TLS.
set -euo pipefail
name=server_curl
source "$(dirname "$0")/common.bash"

port=$(free_port)
sed -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
    -e "s/^public_base = .*/public_base = \"example.org:$port\"/" \
    config/server.example.toml > "$dir/server.toml"

out=$("$bin" server add-account --config "$dir/server.toml" alice@example.org)
password=$(printf '%s\n' "$out" | sed -n 's/^one-time initialisation password: //p')
check "add-account prints a 32-hex-digit one-time password" 32 "$(printf '%s' "$password" | tr -cd '0-9a-f' | wc -c)"
check "add-account again is refused" "1" "$("$bin" server add-account --config "$dir/server.toml" alice@example.org >/dev/null 2>&1; echo $?)"

"$bin" server --config "$dir/server.toml" 2>"$dir/server.log" &
pids+=($!)
wait_port "$port"
"$bin" server export-ca --config "$dir/server.toml" > "$dir/ca.pem"
check "export-ca prints a PEM certificate" "-----BEGIN CERTIFICATE-----" "$(head -n 1 "$dir/ca.pem")"

curl_tls=(curl -sS --max-time 10 --cacert "$dir/ca.pem" --resolve "example.org:$port:127.0.0.1")
base="https://example.org:$port"

check "GET /version" '{"versions":["0.1"]}' "$("${curl_tls[@]}" "$base/version")"
check "GET /.well-known/smimp.txt" "example.org:$port" "$("${curl_tls[@]}" "$base/.well-known/smimp.txt")"
check "server_information lists get_user" "yes" "$("${curl_tls[@]}" "$base/0.1/server_information" | grep -q '"get_user"' && echo yes)"
check "get_user of an uninitialised account is 404 with a JSON error" \
  '404 {"error":{"code":"not_found","message":"there is no initialised account alice#example.org on this server"}}' \
  "$("${curl_tls[@]}" -w '%{http_code} ' -o "$dir/body" "$base/0.1/get_user/alice%23example.org/history"; cat "$dir/body")"
check "an unknown version is refused" "404 unsupported_version" \
  "$("${curl_tls[@]}" -w '%{http_code} ' -o "$dir/body" "$base/0.9/version"; python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["code"])' "$dir/body")"
check "an authenticated call without a session is 401" "401" \
  "$("${curl_tls[@]}" -w '%{http_code}' -o /dev/null "$base/0.1/quota")"
check "curl without the CA refuses the certificate (exit 60)" "60" \
  "$(curl -sS --max-time 10 --resolve "example.org:$port:127.0.0.1" -o /dev/null "$base/version" 2>/dev/null; echo $?)"
# Plain HTTP must get no answer from a server that is up: HTTPS on the same port answers
# right before and right after, so a server that is down cannot pass for one refusing.
check "the server answers HTTPS before the plain HTTP attempt" 200 \
  "$("${curl_tls[@]}" -o /dev/null -w '%{http_code}' "$base/version" 2>/dev/null || true)"
check "plain HTTP gets no HTTP answer" "no" \
  "$(curl -sS --max-time 10 -o /dev/null "http://127.0.0.1:$port/version" 2>/dev/null && echo yes || echo no)"
check "the server answers HTTPS after the plain HTTP attempt" 200 \
  "$("${curl_tls[@]}" -o /dev/null -w '%{http_code}' "$base/version" 2>/dev/null || true)"
check "list-accounts shows the account" "alice#example.org	waiting for initialisation" \
  "$("$bin" server list-accounts --config "$dir/server.toml")"
check "remove-account" "removed alice#example.org and all its data" \
  "$("$bin" server remove-account --config "$dir/server.toml" alice@example.org)"
check "the server logged one line per request" "yes" \
  "$(sed 's/\x1b\[[0-9;]*m//g' "$dir/server.log" | grep -q 'endpoint="/version" status=200' && echo yes || echo no)"

finish
