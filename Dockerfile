# syntax=docker/dockerfile:1
#
# One image per service:
#   docker build --build-arg SERVICE=auth-svc    -t shop-auth-svc .
#   docker build --build-arg SERVICE=catalog-svc -t shop-catalog-svc .
#   docker build --build-arg SERVICE=order-svc   -t shop-order-svc .
# Dependencies are cooked in their own layer (cargo-chef), so a source change
# rebuilds only Shop's crates. The runtime image is distroless: no shell, no
# package manager, a non-root user; migrations are embedded in the binary.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG SERVICE
RUN test -n "${SERVICE}" || (echo "--build-arg SERVICE=auth-svc|catalog-svc|order-svc is required" && false)
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --package "${SERVICE}" --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --package "${SERVICE}" --bin "${SERVICE}" \
 && cp "target/release/${SERVICE}" /service

FROM gcr.io/distroless/cc-debian12:nonroot
ARG SERVICE
LABEL org.opencontainers.image.title="shop-${SERVICE}" \
      org.opencontainers.image.description="Shop ${SERVICE}" \
      org.opencontainers.image.source="https://github.com/shop/shop"
COPY --from=builder /service /usr/local/bin/service
ENV HTTP_ADDR=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]
CMD ["serve"]
