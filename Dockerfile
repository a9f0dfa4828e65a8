# Basalt on an ordinary base image. `docker compose up` (compose.yaml) builds it and starts a
# three-node cluster; `docker run -p 9000:9000 basalt` runs a single node.
FROM rust:1.95-slim-trixie AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p basalt && strip target/release/basalt

FROM debian:trixie-slim
COPY --from=build /src/target/release/basalt /usr/local/bin/basalt
RUN useradd --system --uid 10001 --home-dir /data basalt \
    && mkdir -p /data /pki && chown basalt:basalt /data /pki
USER basalt
WORKDIR /data
VOLUME ["/data"]
# S3, and node-to-node (Raft, shards) for a cluster node.
EXPOSE 9000 9100
ENTRYPOINT ["basalt"]
CMD ["server", "--address", "0.0.0.0:9000", "--data", "/data"]
