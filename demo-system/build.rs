//! Generates inventory's gRPC catalogue (the server trait and the messages) from its
//! `.proto` with protox, a protobuf compiler in Rust: a fresh machine has no `protoc`.
//! Callers do not use a generated client: they call through the demo's own resilient client
//! (`platform::grpc`), which carries the encoded messages.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "gauntlet/inventory/v1/catalog.proto";
    println!("cargo:rerun-if-changed=proto/{proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
