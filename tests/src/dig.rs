//! Reading dig's and kdig's text output: status, header flags and sections.

/// One resource record as printed: (owner, ttl, type, data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub rtype: String,
    pub data: String,
}

/// A parsed dig/kdig response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
}

impl Reply {
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    /// `NOERROR`, `NXDOMAIN`, ... (`<none>` when the query got no answer).
    pub fn status(&self) -> String {
        self.text
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split([',', ';', '\n']).next())
            .unwrap_or("<none>")
            .trim()
            .to_owned()
    }

    /// Header flags from `;; flags: qr aa rd;` (dig) or `;; Flags: qr aa;` (kdig).
    pub fn flags(&self) -> Vec<String> {
        self.text
            .lines()
            .find_map(|l| l.split(";; flags: ").nth(1).or_else(|| l.split(";; Flags: ").nth(1)))
            .map(|f| f.split(';').next().unwrap_or("").split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags().iter().any(|f| f == flag)
    }

    /// Records of one section: `ANSWER`, `AUTHORITY`, `ADDITIONAL`.
    pub fn section(&self, name: &str) -> Vec<Record> {
        let header = format!(";; {name} SECTION:").to_uppercase();
        let mut out = Vec::new();
        let mut lines = self.text.lines().skip_while(|l| !l.to_uppercase().starts_with(&header)).skip(1);
        for l in lines.by_ref() {
            if l.trim().is_empty() || l.starts_with(";;") {
                break;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 5 {
                out.push(Record {
                    name: f[0].to_owned(),
                    ttl: f[1].parse().unwrap_or(0),
                    rtype: f[3].to_owned(),
                    data: f[4..].join(" "),
                });
            }
        }
        out
    }

    /// Data of the answer records of one type, sorted.
    pub fn answers(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> =
            self.section("ANSWER").into_iter().filter(|r| r.rtype == rtype).map(|r| r.data).collect();
        v.sort();
        v
    }

    /// Data of the answer records of one type, in the order received.
    pub fn answers_in_order(&self, rtype: &str) -> Vec<String> {
        self.section("ANSWER").into_iter().filter(|r| r.rtype == rtype).map(|r| r.data).collect()
    }

    /// The EDNS Client Subnet option echoed by the server, as dig prints it
    /// (`CLIENT-SUBNET: 192.0.2.0/24/16`).
    pub fn client_subnet(&self) -> Option<String> {
        self.text.lines().find_map(|l| l.split("CLIENT-SUBNET: ").nth(1)).map(|s| s.trim().to_owned())
    }
}
