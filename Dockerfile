# syntax=docker/dockerfile:1
#
# ductbot's container image: a static binary on distroless, running as a
# non-root user. Build it from the repository root:
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t ductbot .
#
# Multi-platform builds (docker buildx build --platform linux/amd64,linux/arm64)
# cross-compile on the build machine's platform instead of emulating.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src

# Dependencies first, so that source edits do not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG VERSION=dev
ARG TARGETOS TARGETARCH
# Only ./cmd/ductbot, the production binary: the development command
# (cmd/ductbot-dev: the local control plane, the demo) stays out.
# CGO_ENABLED=0: the SQLite driver is pure Go, so the binary needs no libc and
# runs on an image without one. -trimpath keeps build paths out of it.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ductbot ./cmd/ductbot \
 && mkdir -p /out/state

# distroless/static: CA certificates, /etc/passwd with the "nonroot" user
# (65532), tzdata; no shell and no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="ductbot" \
      org.opencontainers.image.description="A Kubernetes test environment, a Verified vote and a chat message for every Gerrit patch set" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /out/ductbot /ductbot
# The state file (state.path) lives here; in Kubernetes a volume is mounted
# over it. Owned by the nonroot user so that `docker run` works without one.
COPY --from=build --chown=65532:65532 --chmod=0750 /out/state /var/lib/ductbot

USER 65532:65532
WORKDIR /var/lib/ductbot
# web.listen: dashboard, run pages, /healthz, /readyz, /metrics.
EXPOSE 8080
ENTRYPOINT ["/ductbot"]
CMD ["run", "--config", "/etc/ductbot/ductbot.yaml"]
