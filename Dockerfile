# Two images from one build:
#   default target (services): bridge, dlq-bookkeeper and admin-api; the
#     container's command picks one, e.g.
#       docker run messagekit-go bridge
#       docker run messagekit-go admin-api migrate
#   --target examples: the example producer and consumer
#     (deployments/docker-compose.yml).
# No HEALTHCHECK: orchestrators probe /healthz and /readyz themselves, and the
# runtime image has no shell or client to run one with.
#
# Base images are pinned by exact tag. Pin them by digest too where a registry
# can be reached (tag@sha256:…); deployments/deployments_test.go rejects
# untagged and :latest bases.
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS source
WORKDIR /src
# Reproducible: no cgo, no local paths (-trimpath), no VCS stamp (.git is not
# in the context, so the build could not read one), the go.mod toolchain or a
# failure rather than a download, and go.sum-verified modules only. What
# `<binary> version` prints is injected instead: build with
#   --build-arg VERSION=$(git describe --tags --always --dirty) --build-arg REVISION=$(git rev-parse HEAD)
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .

FROM source AS build
ARG VERSION=""
ARG REVISION=""
RUN go build -trimpath -buildvcs=false -o /out/services/ \
	-ldflags="-s -w -X github.com/firstunicorn/messagekit-go/internal/service.version=${VERSION} -X github.com/firstunicorn/messagekit-go/internal/service.revision=${REVISION}" \
	./cmd/bridge ./cmd/dlq-bookkeeper ./cmd/admin-api ./cmd/mkctl

FROM source AS build-examples
RUN go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/examples/ ./examples/producer ./examples/consumer

# distroless/static has CA certificates and tzdata and no shell; its nonroot
# user is uid/gid 65532. USER is numeric so that Kubernetes' runAsNonRoot can
# verify it.
FROM ${RUNTIME_IMAGE} AS examples
COPY --from=build-examples /out/examples/ /usr/local/bin/
USER 65532:65532
EXPOSE 8081 8082
CMD ["producer"]

# The last stage is the default target.
FROM ${RUNTIME_IMAGE} AS services
COPY --from=build /out/services/ /usr/local/bin/
USER 65532:65532
EXPOSE 8080 9090
# dockerlinter's EI0001 counts CMDs over all stages; one per stage is right.
# linter ignore=EI0001
CMD ["admin-api"]
