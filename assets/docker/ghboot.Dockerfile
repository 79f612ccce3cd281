# Built by ghboot without any registry: its own executable and the shared libraries it links, nothing else.
FROM scratch
COPY rootfs/ /
LABEL dev.ghboot.image=ghboot
ENV GHBOOT_STATE_DIR=/var/lib/ghboot
ENTRYPOINT ["/ghboot"]
