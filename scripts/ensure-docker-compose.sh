#!/usr/bin/env bash
# The compose-file test runs `docker-compose config`, which needs no Docker engine. Debian's
# docker-compose package provides it; install it when missing and we are allowed to. Never
# fails: without the tool, that one test reports itself skipped.
set -u
command -v docker-compose >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's docker-compose (validates docker-compose.yml in the tests)…"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/tmp/nexus-apt.log 2>&1 \
    || { apt-get update -q >>/tmp/nexus-apt.log 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >>/tmp/nexus-apt.log 2>&1; } \
    || echo "could not install docker-compose (see /tmp/nexus-apt.log); the compose test will be skipped"
else
  echo "docker-compose is not installed; the compose test will be skipped"
fi
exit 0
