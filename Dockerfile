# syntax=docker/dockerfile:1
#
# The transformed-efd image: efd-job, efd-cronjob and efd-monitor on a slim Debian, run as a
# non-root user. The Kubernetes manifests (kubernetes/) call the binaries directly; every flag also
# reads the environment variable the manifests set, so no shell wrapper is needed.
#
#   docker build -t ghcr.io/lsst-dm/consdb-transformed-efd:<tag> .
#
# The build stage's Rust must be at least the workspace's rust-version (Cargo.toml); a test
# (xtask/tests/dockerfile.rs) checks that, and that the binaries and paths below match the workspace.

FROM rust:1.95-slim-trixie AS build
WORKDIR /src
# Build output inside the stage whatever the builder's environment says.
ENV CARGO_TARGET_DIR=/src/target
COPY . .
RUN cargo build --release --locked -p efd-job -p efd-cronjob -p efd-monitor \
    && strip target/release/efd-job target/release/efd-cronjob target/release/efd-monitor

FROM debian:trixie-slim AS runtime
# CA certificates for the EFD, S3 and PostgreSQL over TLS; tzdata is not needed (everything is UTC).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home efd
COPY --from=build /src/target/release/efd-job /src/target/release/efd-cronjob /src/target/release/efd-monitor /usr/local/bin/
USER 10001
# Without a command the image explains itself; the manifests always give one.
CMD ["efd-job", "--help"]
