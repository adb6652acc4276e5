//! Resident memory of the test process, sampled while a future runs (Linux `/proc`).

use std::sync::Arc;
use std::time::Duration;

/// Resident memory of this process, bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// Runs `f` while a thread samples the resident memory every 2 ms; returns its result and the
/// largest growth over the memory before it started.
pub async fn peak_growth<T>(f: impl std::future::Future<Output = T>) -> (T, u64) {
    let before = rss_bytes();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let (st, pk) = (stop.clone(), peak.clone());
    let sampler = std::thread::spawn(move || {
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            pk.fetch_max(rss_bytes(), std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let out = f.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    (out, growth)
}
