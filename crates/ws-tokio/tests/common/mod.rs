//! The tokio side of the tests shared with ws-futures
//! (`crates/ws-async/adapter-tests`, see its `runtime.rs`): the adapter,
//! tokio's I/O traits, and its current-thread and multi-thread runtimes, on
//! which every scenario runs.

#![allow(dead_code, unused_imports, unused_macros)] // each test binary uses a different part

use core::{future::Future, time::Duration};

pub(crate) use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
pub(crate) use ws_tokio as ws;

#[path = "../../../ws-async/adapter-tests/runtime.rs"]
mod runtime;

pub(crate) use runtime::{Boxed, Rt, pair, tcp, tests_on};

#[path = "../../../ws-async/adapter-tests/frames.rs"]
mod frames;

pub(crate) use frames::masked;

/// Shuts the write side of `io` down (`shutdown`; `futures-io`'s `close`):
/// a `MessageWriter` finishes its message.
pub(crate) async fn shutdown(io: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
    io.shutdown().await
}

/// A tokio runtime with `WORKERS` worker threads; 0: the current-thread
/// runtime.
pub(crate) struct Tokio<const WORKERS: usize>;

/// The current-thread runtime (`#[tokio::test]`'s).
pub(crate) type CurrentThread = Tokio<0>;
/// The multi-thread runtime, with two workers.
pub(crate) type MultiThread = Tokio<2>;

impl<const WORKERS: usize> Rt for Tokio<WORKERS> {
    type S = tokio::net::TcpStream;

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        let mut builder = match WORKERS {
            0 => tokio::runtime::Builder::new_current_thread(),
            n => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(n);
                builder
            }
        };
        builder.enable_all().build().unwrap().block_on(f)
    }

    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Boxed<T> {
        let task = tokio::spawn(f);
        Box::pin(async {
            task.await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        })
    }

    fn sleep(duration: Duration) -> Boxed<()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn stream(tcp: std::net::TcpStream) -> tokio::net::TcpStream {
        tokio::net::TcpStream::from_std(tcp).unwrap()
    }
}

/// The runtime of the tests that run on one (the memory measurements).
pub(crate) type Main = MultiThread;

/// The `#[test]`s of the scenarios `$test` (generic over [`Rt`], in the
/// invoking module) on the current-thread and the multi-thread runtime,
/// each within `$secs` seconds.
macro_rules! on_runtimes {
    ($secs:expr; $($test:ident),+ $(,)?) => {
        $crate::common::tests_on!(current_thread, $crate::common::CurrentThread, $secs; $($test),+);
        $crate::common::tests_on!(multi_thread, $crate::common::MultiThread, $secs; $($test),+);
    };
}

pub(crate) use on_runtimes;
