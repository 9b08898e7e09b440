# syntax=docker/dockerfile:1
# Build stage: the same commands as .ci/run (fmt, clippy, the full test suite
# against a private redis-server), then the release binary. The packages are
# the ones .ci/run would install: Redis, Chromium for the dashboard test,
# promtool for the alerting rules' test.
FROM rust:1.95-bookworm AS build
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends redis-server \
      chromium chromium-driver prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && rustup component add rustfmt clippy
WORKDIR /src
COPY . .
RUN bash .ci/run \
 && cargo build --release --locked

# Runtime stage: a non-root user, the binary and the commented config.
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app hookd \
 && mkdir -p /var/lib/hookd/spool && chown -R hookd /var/lib/hookd
WORKDIR /app
COPY --from=build /src/target/release/hookd /usr/local/bin/hookd
COPY config/hookd.toml /app/config/hookd.toml
ENV HOOKD_SPOOL__DIR=/var/lib/hookd/spool
VOLUME /var/lib/hookd/spool
USER hookd
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health/live || exit 1
ENTRYPOINT ["/usr/local/bin/hookd"]
CMD ["run", "--config", "/app/config/hookd.toml"]
