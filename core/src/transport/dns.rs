//! Where to connect: XEP-0368 / RFC 6120 §3.2 SRV lookup, falling back to
//! the domain itself on 5222.

use hickory_resolver::TokioResolver;

/// One address to try, with how TLS starts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub direct_tls: bool,
}

/// Resolves the connection targets for `domain`, best first.
pub async fn resolve(domain: &str) -> Vec<Target> {
    let mut found: Vec<(u16, Target)> = Vec::new();
    // DNS must not hold a login hostage: a dead resolver costs 5 s at most.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        lookup(domain, &mut found),
    )
    .await;
    order(found, domain)
}

async fn lookup(domain: &str, found: &mut Vec<(u16, Target)>) {
    if let Ok(resolver) = TokioResolver::builder_tokio().map(|b| b.build()) {
        for (service, direct_tls) in [("_xmpps-client._tcp", true), ("_xmpp-client._tcp", false)] {
            let name = format!("{service}.{domain}.");
            let Ok(lookup) = resolver.srv_lookup(name).await else {
                continue;
            };
            for srv in lookup.iter() {
                let host = srv.target().to_utf8();
                let host = host.trim_end_matches('.').to_owned();
                // "." as target means the service is decidedly not available.
                if host.is_empty() {
                    continue;
                }
                found.push((
                    srv.priority(),
                    Target {
                        host,
                        port: srv.port(),
                        direct_tls,
                    },
                ));
            }
        }
    }
}

/// Lower priority first; at equal priority direct TLS first (it saves a
/// round trip); the plain domain on 5222 as the last resort.
fn order(mut found: Vec<(u16, Target)>, domain: &str) -> Vec<Target> {
    found.sort_by_key(|(priority, t)| (*priority, !t.direct_tls));
    let mut targets: Vec<Target> = found.into_iter().map(|(_, t)| t).collect();
    let fallback = Target {
        host: domain.to_owned(),
        port: 5222,
        direct_tls: false,
    };
    if !targets.contains(&fallback) {
        targets.push(fallback);
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_targets_are_ordered_and_the_domain_is_the_fallback() {
        let t = |host: &str, port, direct_tls| Target {
            host: host.into(),
            port,
            direct_tls,
        };
        let ordered = order(
            vec![
                (10, t("b.example", 5222, false)),
                (5, t("a.example", 5222, false)),
                (10, t("c.example", 5223, true)),
            ],
            "example.org",
        );
        assert_eq!(
            ordered,
            vec![
                t("a.example", 5222, false),
                t("c.example", 5223, true),
                t("b.example", 5222, false),
                t("example.org", 5222, false)
            ]
        );
    }

    #[tokio::test]
    async fn a_domain_without_srv_records_falls_back_to_5222() {
        // `.invalid` never resolves (RFC 2606), so only the fallback remains.
        let targets = resolve("nothing.invalid").await;
        assert_eq!(
            targets,
            vec![Target {
                host: "nothing.invalid".into(),
                port: 5222,
                direct_tls: false
            }]
        );
    }
}
