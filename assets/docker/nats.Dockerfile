# Built by ghboot without any registry: the static nats-server on top of ghboot's image (whose executable
# gives the health check: a scratch image has no shell, curl or wget).
FROM {{ base }}
COPY nats-server /nats-server
LABEL dev.ghboot.image=nats
EXPOSE 4222 6222 8222
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/ghboot", "healthcheck", "http://127.0.0.1:8222/healthz?js-enabled-only=true"]
ENTRYPOINT ["/nats-server"]
