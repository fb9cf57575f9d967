//! A gRPC health server (grpc.health.v1, tonic-health) on 127.0.0.1, for
//! grpc probes: "" and "db" are SERVING, "down" is NOT_SERVING.

use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;

/// Starts the server on a free port and returns the port. It serves until
/// the test's runtime ends.
pub async fn serve() -> u16 {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("db", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("down", ServingStatus::NotServing)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let _keep = reporter;
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });
    port
}
