# The cluster DNS image (ghcr.io/ferrodns/ferrodns), for deploy/kube-dns.yaml: the `ferrodns`
# binary, a drop-in for the coredns binary kubeadm's Deployment runs (`-conf
# /etc/coredns/Corefile`). Build from the repository root:
#   docker build -f deploy/ferrodns.Dockerfile -t ghcr.io/ferrodns/ferrodns:0.1.0 .
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p ferrodns \
 && cp target/x86_64-unknown-linux-musl/release/ferrodns /ferrodns

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /ferrodns /ferrodns
# kubeadm's Deployment adds NET_BIND_SERVICE for port 53 and mounts the Corefile ConfigMap at
# /etc/coredns.
EXPOSE 53/udp 53/tcp 9153/tcp 8080/tcp 8181/tcp
ENTRYPOINT ["/ferrodns"]
