//! `meridian serve` as a reverse proxy in front of backends the test runs itself.
//!
//! Each backend becomes one simulated cluster whose `web` Service has the backend's IP as
//! its `externalIPs` and the backend's port as its port: an externalIPs Service with
//! ready endpoints (the simulator makes an EndpointSlice for any Service with a selector)
//! is federated, and the proxy sends its traffic to `externalIP:port` — as in a real
//! cluster. Active health checks are off (`[health] kind = "off"`), so the backends see
//! only what the proxy forwards.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::raw::Client;
use crate::{Meridian, config_head, eventually, free_addr, kubectl_ok};

/// The host the proxy routes to the backends (`[[lb.routes]]`).
pub const HOST: &str = "app.sm.test";

/// A running Meridian proxying [`HOST`] to the given backends.
pub struct MeridianProxy {
    pub meridian: Meridian,
    /// The proxy's plain-HTTP listener.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl MeridianProxy {
    /// Starts Meridian with `extra` appended to its `[lb]` section (TOML tables such as
    /// `[lb.timeouts]`), points one cluster at each backend, and waits until a request
    /// for [`HOST`] is answered 200 by a backend (that request reaches a backend: callers
    /// drain their recordings after this returns).
    pub fn start(backends: &[SocketAddr], extra: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let (admin, dns, addr) = (free_addr(), free_addr(), free_addr());
        let mut config = config_head("sm", admin, dns);
        config.push_str(&format!(
            "[health]\nkind = \"off\"\n\
             [lb]\nenabled = true\nlisten = [\"{addr}\"]\nlisten_tls = []\n\
             [[lb.routes]]\nhost = \"{HOST}\"\nservice = \"default/web\"\n{extra}\n"
        ));
        for i in 0..backends.len() {
            config.push_str(&format!("[[clusters]]\nname = \"c{i}\"\nsimulated = true\n"));
        }
        let file = dir.path().join("meridian.toml");
        std::fs::write(&file, config)?;
        let meridian = Meridian::serve(&file)?.with_ports_live(admin, dns)?;
        for (i, b) in backends.iter().enumerate() {
            let svc = dir.path().join(format!("c{i}.yaml"));
            std::fs::write(
                &svc,
                format!(
                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {{app: web}}\n  \
                     externalIPs: [\"{}\"]\n  ports:\n  - {{name: http, port: {}}}\n",
                    b.ip(),
                    b.port()
                ),
            )?;
            kubectl_ok(&meridian.kubeconfig(), &format!("c{i}"), &["apply", "-f", &svc.to_string_lossy()])?;
        }
        let p = Self { meridian, addr, _dir: dir };
        p.wait_routed(backends.len())?;
        Ok(p)
    }

    /// Waits until every backend is in the route and a request gets a backend's 200.
    fn wait_routed(&self, backends: usize) -> Result<()> {
        eventually(Duration::from_secs(20), "route to the backends", || {
            if self.backend_states()?.len() < backends {
                return Ok(None);
            }
            let req = format!("GET /ready HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").into_bytes();
            let ex = Client::default().exchange(self.addr, &[req])?;
            Ok((ex.statuses() == [200]).then_some(()))
        })
        .with_context(|| self.meridian.log())
    }

    /// `(address, state)` of every backend of every route, from the admin API
    /// (`/api/v1/lb`): state is `up`, `ejected` or `unhealthy`.
    pub fn backend_states(&self) -> Result<Vec<(String, String)>> {
        let lb = self.meridian.json("/api/v1/lb")?;
        let Some(routes) = lb.pointer("/routes").and_then(|r| r.as_array()) else {
            bail!("/api/v1/lb has no routes: {lb}");
        };
        let mut out = Vec::new();
        for level in routes.iter().filter_map(|r| r.get("levels")?.as_array()).flatten() {
            for b in level.get("backends").and_then(|b| b.as_array()).into_iter().flatten() {
                let field = |k: &str| b.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
                out.push((field("address"), field("state")));
            }
        }
        Ok(out)
    }
}
