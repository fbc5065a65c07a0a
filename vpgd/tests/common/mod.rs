//! Helpers shared by the namespace tests.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Stops a vpgd the way an operator would (SIGTERM, then up to 10 s for a clean exit) and kills
/// it if it is still there.
pub fn terminate(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}
