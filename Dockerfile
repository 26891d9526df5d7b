# Static sentinel-proxy in a minimal, non-root image (no shell, no package manager).
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) -t sentinel-proxy .
#   docker run --stop-timeout 35 -v $PWD/config.toml:/etc/sentinel-proxy/config.toml:ro \
#       -p 5000:5000 -p 5001:5001 -p 9000:9000 sentinel-proxy
# The config is read from /etc/sentinel-proxy/config.toml (SENTINEL_PROXY_CONFIG). docs/deploy.md has more.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=""
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/sentinel-proxy . \
 && /out/sentinel-proxy version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sentinel-proxy /usr/local/bin/sentinel-proxy
ENV SENTINEL_PROXY_CONFIG=/etc/sentinel-proxy/config.toml
EXPOSE 5000 5001 9000
USER nonroot:nonroot
# The binary checks itself: GET /healthz on [stats].listen from the mounted config (needs the stats port on).
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sentinel-proxy", "health"]
# SIGTERM drains sessions for up to [proxy].shutdown_timeout (30s): give `docker stop` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sentinel-proxy"]
CMD ["run"]
