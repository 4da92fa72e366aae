//! Stop requests from the operator: Ctrl-C (SIGINT) and SIGTERM.

/// Completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called — call it
/// before printing that the program is up — so that an early stop request is never the default,
/// fatal, one. Needs a tokio runtime context.
pub fn requested() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            tracing::info!("stop requested");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stop requested");
    }
}
