//! Where to connect: XEP-0368 / RFC 6120 §3.2 SRV lookup, falling back to
//! the domain itself on 5222.

use hickory_resolver::TokioResolver;
use rand::Rng;

/// One address to try, with how TLS starts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub direct_tls: bool,
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone)]
struct Srv {
    priority: u16,
    weight: u16,
    target: Target,
}

/// What the SRV lookups found.
#[derive(Debug, Default)]
struct Found {
    records: Vec<Srv>,
    /// `_xmpp-client` answered with the target "." (RFC 2782): the service
    /// is decidedly not available, so there is no fallback to 5222.
    starttls_refused: bool,
}

/// Resolves the connection targets for `domain`, best first (empty when
/// the domain says it has no XMPP service).
pub async fn resolve(domain: &str) -> Vec<Target> {
    let mut found = Found::default();
    // DNS must not hold a login hostage: a dead resolver costs 5 s at most.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        lookup(domain, &mut found),
    )
    .await;
    order(found, domain, &mut rand::thread_rng())
}

async fn lookup(domain: &str, found: &mut Found) {
    let Ok(resolver) = TokioResolver::builder_tokio().map(|b| b.build()) else {
        return;
    };
    for (service, direct_tls) in [("_xmpps-client._tcp", true), ("_xmpp-client._tcp", false)] {
        let name = format!("{service}.{domain}.");
        let Ok(lookup) = resolver.srv_lookup(name).await else {
            continue;
        };
        for srv in lookup.iter() {
            let host = srv.target().to_utf8();
            let host = host.trim_end_matches('.').to_owned();
            if host.is_empty() {
                found.starttls_refused |= !direct_tls;
                continue;
            }
            found.records.push(Srv {
                priority: srv.priority(),
                weight: srv.weight(),
                target: Target {
                    host,
                    port: srv.port(),
                    direct_tls,
                },
            });
        }
    }
}

/// Lower priority first; within a priority, direct TLS first (XEP-0368: it
/// saves a round trip), then RFC 2782's weighted random order. The domain
/// itself on 5222 only when there are no SRV records at all (RFC 6120
/// §3.2.1) and `_xmpp-client` did not say "no service".
fn order(found: Found, domain: &str, rng: &mut impl Rng) -> Vec<Target> {
    let Found {
        mut records,
        starttls_refused,
    } = found;
    if records.is_empty() {
        if starttls_refused {
            return Vec::new();
        }
        return vec![Target {
            host: domain.to_owned(),
            port: 5222,
            direct_tls: false,
        }];
    }
    records.sort_by_key(|r| (r.priority, !r.target.direct_tls));
    let mut targets = Vec::with_capacity(records.len());
    for group in records
        .chunk_by(|a, b| (a.priority, a.target.direct_tls) == (b.priority, b.target.direct_tls))
    {
        targets.extend(weighted(group.to_vec(), rng));
    }
    targets
}

/// RFC 2782's selection within one priority: weight-0 records first in the
/// running sums (so they are rarely chosen early), then repeatedly pick by
/// a random number in 0..=sum of the remaining weights.
fn weighted(mut left: Vec<Srv>, rng: &mut impl Rng) -> Vec<Target> {
    left.sort_by_key(|r| r.weight != 0);
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u32 = left.iter().map(|r| u32::from(r.weight)).sum();
        let pick = rng.gen_range(0..=total);
        let mut running = 0;
        let index = left
            .iter()
            .position(|r| {
                running += u32::from(r.weight);
                running >= pick
            })
            .unwrap_or(0);
        out.push(left.remove(index).target);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, port: u16, direct_tls: bool) -> Target {
        Target {
            host: host.into(),
            port,
            direct_tls,
        }
    }

    fn srv(priority: u16, weight: u16, target: Target) -> Srv {
        Srv {
            priority,
            weight,
            target,
        }
    }

    fn found(records: Vec<Srv>) -> Found {
        Found {
            records,
            starttls_refused: false,
        }
    }

    #[test]
    fn srv_targets_are_ordered_by_priority_then_direct_tls_and_only_srv_targets_are_used() {
        let ordered = order(
            found(vec![
                srv(10, 0, t("b.example", 5222, false)),
                srv(5, 0, t("a.example", 5222, false)),
                srv(10, 0, t("c.example", 5223, true)),
            ]),
            "example.org",
            &mut rand::thread_rng(),
        );
        assert_eq!(
            ordered,
            vec![
                t("a.example", 5222, false),
                t("c.example", 5223, true),
                t("b.example", 5222, false),
            ],
            "no fallback to the domain when SRV records exist (RFC 6120 §3.2.1)"
        );
    }

    /// Issue 12, defect 18: weights share the load as RFC 2782 says.
    #[test]
    fn weights_decide_how_often_a_target_comes_first() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut heavy_first = 0;
        for _ in 0..1000 {
            let ordered = order(
                found(vec![
                    srv(1, 10, t("light.example", 5222, false)),
                    srv(1, 90, t("heavy.example", 5222, false)),
                ]),
                "example.org",
                &mut rng,
            );
            assert_eq!(ordered.len(), 2);
            heavy_first += usize::from(ordered[0].host == "heavy.example");
        }
        assert!((850..=950).contains(&heavy_first), "{heavy_first} of 1000");
    }

    /// Issue 12, defect 18: "." means no service — no fallback to 5222.
    #[test]
    fn a_dot_target_means_no_service_and_no_fallback() {
        let refused = Found {
            records: Vec::new(),
            starttls_refused: true,
        };
        assert!(order(refused, "example.org", &mut rand::thread_rng()).is_empty());
        let direct_only = Found {
            records: vec![srv(1, 0, t("x.example", 5223, true))],
            starttls_refused: true,
        };
        assert_eq!(
            order(direct_only, "example.org", &mut rand::thread_rng()),
            vec![t("x.example", 5223, true)]
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
