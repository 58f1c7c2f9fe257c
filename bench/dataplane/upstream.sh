#!/bin/sh
# The bench's upstream app: nginx answering every request with the same 1 KB body, on $PORT.
# The local runtime starts it as the upstream workload; the bench points "direct" and nginx at it too.
set -eu
PATH="$PATH:/usr/sbin"
dir=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench-upstream.XXXXXX")
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  fastcgi_temp_path $dir;
  uwsgi_temp_path $dir;
  scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$PORT;
    ${PORT_H2C:+listen 127.0.0.1:$PORT_H2C http2;}
    default_type text/plain;
    location / { return 200 "$body"; }
  }
}
CONF
exec nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;'
