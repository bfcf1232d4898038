# ycloud-controller image.
#
#   docker build -t ycloud-controller:0.1.0 .
#
# Python is Debian's /usr/bin/python3 (3.11) so that python3-openvswitch's C JSON parser
# (ovs._json, built for exactly that interpreter) is used: the venv is created with
# --system-site-packages, and pip keeps Debian's ovs because it already satisfies setup.cfg.
# The build fails if the venv would parse OVSDB JSON in pure Python.
# One image for the controller and the node agent (`ycloud-controller node`, DaemonSet
# manifests/node/): the agent needs iproute2 and ethtool, and util-linux's nsenter (essential in
# Debian, so always there).

FROM debian:bookworm-slim AS base
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-openvswitch ca-certificates \
        iproute2 ethtool \
    && rm -rf /var/lib/apt/lists/*

# -- build: a venv with the package and its PyPI dependencies --------------------------------
FROM base AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN /usr/bin/python3 -m venv --system-site-packages /opt/ycloud
COPY . /src
RUN /opt/ycloud/bin/pip install --no-cache-dir --disable-pip-version-check /src \
    && /opt/ycloud/bin/python -c "import ovs, ovs.json; assert ovs.json.PARSER == ovs.json.PARSER_C, 'ovs C JSON parser not used: ' + ovs.__file__" \
    && /opt/ycloud/bin/ycloud-controller --help >/dev/null \
    && /opt/ycloud/bin/ycloud-controller node --help >/dev/null

# -- runtime: Debian's python3 + python3-openvswitch, the venv, no pip toolchain ------------
FROM base
LABEL org.opencontainers.image.title="ycloud-controller" \
      org.opencontainers.image.description="OVN northbound SDN controller for Kubernetes" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/ycloud /opt/ycloud
RUN groupadd --system --gid 65532 ycloud \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ycloud \
    && mkdir -p /etc/ycloud/ssl
ENV PATH=/opt/ycloud/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["ycloud-controller"]
CMD ["--help"]
