# Quire's three binaries in one small image: quire (the log), quire-witness and quirectl.
#
#   podman build -t quire .            (or docker build)
#   podman run --rm -p 3000:3000 -v quire-data:/var/lib/quire quire
#
# The binaries are static (CGO_ENABLED=0: Pebble and every dependency are pure Go), so the final
# stage is distroless/static: no shell, no package manager, runs as the unprivileged "nonroot"
# user (65532). The log's state lives in the volume /var/lib/quire.

FROM docker.io/library/golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# -trimpath keeps the build directory out of the binaries; the commit is stamped from .git when
# the context has it (see .dockerignore).
RUN CGO_ENABLED=0 GOFLAGS=-trimpath go build -o /out/ ./cmd/quire ./cmd/quire-witness ./cmd/quirectl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/quire /out/quire-witness /out/quirectl /usr/local/bin/
USER nonroot:nonroot
WORKDIR /var/lib/quire
VOLUME /var/lib/quire
# REST and tlog-tiles reads, gRPC, and metrics (which the image serves on all interfaces so that
# a Prometheus in another container can scrape them; publish the port only where it should).
EXPOSE 3000 3001 3002
ENTRYPOINT ["/usr/local/bin/quire"]
CMD ["serve", "--data-dir", "/var/lib/quire", "--http-listen", "0.0.0.0:3000", "--metrics-listen", "0.0.0.0:3002"]
