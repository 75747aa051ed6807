# redpacket in two stages: a Debian 12 build of the release preset (the library packages
# scripts/install-deps lists), then a slim runtime with only the binary, its Lua scripts and the
# runtime libraries it links. Used by docker-compose.yml (serve, worker, migrate, audit, token).
FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev \
      libssl-dev libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev \
      prometheus-cpp-dev libhiredis-dev libmariadb-dev librdkafka-dev \
    && rm -rf /var/lib/apt/lists/*
# The same absolute path in both stages: the Lua scripts' directory is compiled in
# (REDPACKET_LUA_DIR = <source>/src/store/redis/lua, src/store/redis/CMakeLists.txt).
WORKDIR /opt/redpacket
COPY CMakeLists.txt CMakePresets.json ./
COPY src ./src
COPY tests ./tests
COPY fuzz ./fuzz
COPY bench ./bench
RUN cmake --preset release -DREDPACKET_BUILD_TESTS=OFF -DREDPACKET_BUILD_BENCHMARKS=OFF \
    && cmake --build --preset release --target redpacket

FROM debian:12-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# The shared libraries `ldd build/release/src/app/redpacket` names, by their Debian packages
# (README, "Docker"); curl for the health checks.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libboost-json1.81.0 libboost-url1.81.0 libssl3 libsqlite3-0 libspdlog1.10 libfmt9 \
      libprometheus-cpp-core1.0 libhiredis0.14 libmariadb3 librdkafka++1 librdkafka1 \
      libtomlplusplus3 \
      ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/redpacket --create-home redpacket
COPY --from=build /opt/redpacket/build/release/src/app/redpacket /usr/local/bin/redpacket
COPY --from=build /opt/redpacket/src/store/redis/lua /opt/redpacket/src/store/redis/lua
USER redpacket
WORKDIR /var/lib/redpacket
EXPOSE 8080 9100
ENTRYPOINT ["redpacket"]
CMD ["serve", "--help"]
