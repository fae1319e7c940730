# calico-node-py: the node image. Build it with `make image` (scripts/build_image.py),
# which makes the wheels this file installs and, where no registry can be reached, a
# local Debian bookworm base (debootstrap --variant=minbase + docker import).
#
#   docker build --network=host --build-arg BASE_IMAGE=debian:bookworm-slim -t calico-node-py:latest .
#
# works too once build/wheels/ exists (scripts/build_image.py --wheels-only makes it).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG GIT_VERSION=unknown

# Packages must not try to start services while the image is built.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d

# The same run-time package set as `make setup` installs on a test machine: BIRD,
# iptables, ipset, iproute2, supervisor, Python... (apt over plain HTTP).
COPY scripts/install-system-packages.sh /tmp/install-system-packages.sh
RUN bash /tmp/install-system-packages.sh --image && rm /tmp/install-system-packages.sh

# Python packages from wheels built on the host: no package index is used here. The
# dependencies change rarely and get their own layer; the project's wheel changes often.
RUN python3 -m venv /opt/calico-node
COPY build/wheels/deps/ /tmp/wheels/deps/
RUN /opt/calico-node/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels/deps \
        -r /tmp/wheels/deps/requirements.txt \
    && rm -rf /tmp/wheels/deps

# The BIRD templates and the image's own files (supervisord's configuration template,
# restart-calico-confd, versions, the birdcl/birdcl6 clients...) live outside the
# Python package.
# Calico's CRDs too, which `calicoctl datastore migrate import` installs (Calico's
# calicoctl carries them inside its binary).
COPY templates/bird/ /usr/share/calico-node/templates/bird/
COPY manifests/crds.yaml /usr/share/calico-node/manifests/crds.yaml
COPY rootfs/ /
ENV CALICO_TEMPLATES_DIR=/usr/share/calico-node/templates/bird \
    CALICO_SUPERVISORD_TEMPLATE=/etc/calico/supervisord.conf.j2 \
    CALICO_CRDS_FILE=/usr/share/calico-node/manifests/crds.yaml

COPY build/wheels/app/ /tmp/wheels/app/
# /bin/calico-node as in Calico's image: the non-cluster host docs start the container with
# `/bin/calico-node -felix` and copy the program out with `docker cp container:/bin/calico-node`.
RUN /opt/calico-node/bin/pip install --no-cache-dir --no-index --no-deps /tmp/wheels/app/*.whl \
    && /opt/calico-node/bin/pip check \
    && rm -rf /tmp/wheels \
    && ln -s /opt/calico-node/bin/calico-node /usr/local/bin/calico-node \
    && ln -s /opt/calico-node/bin/calico-node /bin/calico-node \
    && ln -s /opt/calico-node/bin/calicoctl /usr/local/bin/calicoctl \
    && calico-node version

LABEL org.opencontainers.image.description="A Python re-implementation of Calico's node image" \
      org.opencontainers.image.title="calico-node-py" \
      org.opencontainers.image.version="${GIT_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# tini as PID 1: a signal that arrives before supervisord has set its handlers (PID 1
# ignores signals it has no handler for) still stops the node; -g signals the whole group.
# The node itself is the default command, as Calico's image has its start_runit as CMD:
# `docker run IMAGE` starts the node, `docker run IMAGE calico-node version` (or versions,
# birdcl..., or a shell) runs that instead, still under tini.
ENTRYPOINT ["/usr/bin/tini", "-g", "--"]
CMD ["calico-node", "start"]
