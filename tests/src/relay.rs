//! A TCP server on loopback on its own thread and runtime, handing each accepted connection to
//! a handler: what the relays in front of tansu ([`crate::kafka::TlsProxy`],
//! [`crate::sasl::SaslProxy`]) share. Stopped when dropped.

use std::future::Future;

/// A running server; stops accepting (and its thread ends) when dropped.
pub struct Relay {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Binds a loopback port now (so a broker can advertise it before it starts).
    pub fn bind() -> (std::net::TcpListener, String) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a relay");
        let addr = l.local_addr().expect("relay address").to_string();
        (l, addr)
    }

    /// Serves `listener`: every connection gets its own task running `handle`.
    pub fn serve<F, Fut>(listener: std::net::TcpListener, handle: F) -> Relay
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr().expect("relay address").to_string();
        listener.set_nonblocking(true).expect("nonblocking");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("relay runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).expect("relay listener");
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stopped => return,
                        a = l.accept() => match a {
                            Ok(a) => a,
                            Err(_) => continue,
                        },
                    };
                    tokio::spawn(handle(tcp));
                }
            });
        });
        Relay {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
