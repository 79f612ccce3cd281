# Built by ghboot without any registry: its own executable and the shared libraries it links, plus git (and its
# https helper and libraries) and the CA bundle from the host, for the controller.
FROM scratch
COPY rootfs/ /
LABEL dev.ghboot.image=ghboot
ENV GHBOOT_STATE_DIR=/var/lib/ghboot HOME=/tmp
# each component says what to probe in GHBOOT_HEALTHCHECK_URL (a scratch image has no shell for --health-cmd)
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/ghboot", "healthcheck", "env"]
ENTRYPOINT ["/ghboot"]
