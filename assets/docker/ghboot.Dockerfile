# Built by ghboot without any registry: its own executable and the shared libraries it links, nothing else.
FROM scratch
COPY rootfs/ /
LABEL dev.ghboot.image=ghboot
ENV GHBOOT_STATE_DIR=/var/lib/ghboot
# each component says what to probe in GHBOOT_HEALTHCHECK_URL (a scratch image has no shell for --health-cmd)
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/ghboot", "healthcheck", "env"]
ENTRYPOINT ["/ghboot"]
