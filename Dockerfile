# Static sentinel-proxy in a minimal, non-root image.
#   docker build -t sentinel-proxy .
#   docker run -v $PWD/config.toml:/etc/sentinel-proxy/config.toml -p 5000:5000 -p 5001:5001 -p 9000:9000 sentinel-proxy
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sentinel-proxy .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sentinel-proxy /usr/local/bin/sentinel-proxy
ENV SENTINEL_PROXY_CONFIG=/etc/sentinel-proxy/config.toml
EXPOSE 5000 5001 9000
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/sentinel-proxy"]
CMD ["run"]
