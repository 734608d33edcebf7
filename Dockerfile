# One image, three binaries: the container's command picks one, e.g.
#   docker run messagekit bridge
#   docker run messagekit admin-api migrate
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/bridge ./cmd/dlq-bookkeeper ./cmd/admin-api

# distroless/static has CA certificates and tzdata and no shell; nonroot is
# uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080 9090
CMD ["admin-api"]
