# redpacket in two stages on a Debian 12 base (the build argument BASE_IMAGE, debian:12 unless
# scripts/docker made a local one): the release preset's `redpacket` target built with the library
# packages of scripts/install-deps, then a runtime image with the binary, its Lua scripts and the
# packages of the shared libraries it loads. docker-compose.yml runs it as migrate, worker,
# api-1/api-2 and token-secret; build it with `--network host` where containers have no route out.
# Every image's first step after FROM is its own apt-get line: a step that several Dockerfiles
# share (an ARG, a LABEL) makes equal layers when they build in parallel, and the legacy builder
# then matches its cache on any one of them and rebuilds everything after it.
ARG BASE_IMAGE=debian:12

FROM ${BASE_IMAGE} AS build
RUN export DEBIAN_FRONTEND=noninteractive && apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates python3 python3-yaml \
      libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev \
      libssl-dev libsqlite3-dev liburing-dev libspdlog-dev libfmt-dev libcli11-dev \
      libtomlplusplus-dev prometheus-cpp-dev libhiredis-dev libmariadb-dev librdkafka-dev \
    && rm -rf /var/lib/apt/lists/*
# The same absolute path in both stages: the Lua scripts' directory is compiled in
# (REDPACKET_LUA_DIR = <source>/src/store/redis/lua, src/store/redis/CMakeLists.txt).
WORKDIR /opt/redpacket
# Only what the `redpacket` target is built from (tests, benchmarks and fuzz targets are off; the
# web page and the API description are compiled in), the least changed first, so an edit under
# src/ reuses every layer above. .dockerignore lets nothing else into the context.
COPY CMakeLists.txt CMakePresets.json ./
COPY cmake ./cmake
COPY web ./web
COPY docs/openapi.yaml ./docs/openapi.yaml
COPY src ./src
RUN cmake --preset release -DREDPACKET_BUILD_TESTS=OFF -DREDPACKET_BUILD_BENCHMARKS=OFF >/dev/null \
    && cmake --build --preset release --target redpacket -- -j"$(nproc)" \
    && strip build/release/src/app/redpacket
COPY deploy/docker/redpacket/runtime-packages /usr/local/bin/
RUN runtime-packages build/release/src/app/redpacket >/opt/runtime-packages.txt \
    && cat /opt/runtime-packages.txt

FROM ${BASE_IMAGE} AS runtime
# The packages of the binary's shared libraries (as listed by the build stage: the layer is
# rebuilt only when that list changes), curl for the health checks.
COPY --from=build /opt/runtime-packages.txt /opt/redpacket/runtime-packages.txt
RUN export DEBIAN_FRONTEND=noninteractive && apt-get update -qq \
    && xargs -a /opt/redpacket/runtime-packages.txt apt-get install -y -qq --no-install-recommends \
         ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/redpacket --create-home redpacket \
    && install -d -o redpacket -g redpacket -m 0700 /var/lib/redpacket/secret
COPY --from=build /opt/redpacket/src/store/redis/lua /opt/redpacket/src/store/redis/lua
COPY --from=build /opt/redpacket/build/release/src/app/redpacket /usr/local/bin/redpacket
USER redpacket
WORKDIR /var/lib/redpacket
EXPOSE 8080 9100
ENTRYPOINT ["redpacket"]
CMD ["--help"]
