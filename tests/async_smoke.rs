#![cfg(feature = "tokio")]
//! smoke
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

fn name(scheme: &str) -> String {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    match scheme {
        "unix" => format!("unix:/tmp/smoke-{pid}-{n}.sock"),
        "tcp" => "tcp://127.0.0.1:0".into(),
        "fifo" => format!("fifo:/tmp/smoke-{pid}-{n}.fifo"),
        "mq" => format!("mq:/smoke-{pid}-{n}?capacity=4&max_message_size=65536"),
        "sysv-mq" => format!("sysv-mq:/tmp/smoke-{pid}-{n}.key?max_message_size=65536"),
        "shm" => format!("shm:/smoke-{pid}-{n}"),
        "sysv-shm" => format!("sysv-shm:/tmp/smoke-{pid}-{n}.key"),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_everywhere() {
    for scheme in ["unix", "tcp", "fifo", "mq", "sysv-mq", "shm", "sysv-shm"] {
        let ep: ipcx::Endpoint = name(scheme).parse().unwrap();
        let mut listener = ipcx::tokio::listen(&ep).unwrap();
        let ep = listener.endpoint().clone();
        let server = tokio::spawn(async move {
            let mut conn = listener.accept().await.unwrap();
            loop {
                match conn.recv().await {
                    Ok(m) => conn.send(&m).await.unwrap(),
                    Err(ipcx::Error::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let t = std::time::Instant::now();
        let mut c = ipcx::tokio::connect(&ep).await.unwrap();
        for i in 0..2000u32 {
            let len = [0usize, 1, 64, 4096, 20000][i as usize % 5];
            let msg: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
            c.send(&msg).await.unwrap();
            assert_eq!(c.recv().await.unwrap(), msg);
        }
        drop(c);
        server.await.unwrap();
        eprintln!("{scheme}: {:?}", t.elapsed());
    }
}
