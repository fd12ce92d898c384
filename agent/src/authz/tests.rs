use palisade_proto::xds as pb;
use pb::string_match::Pattern as Kind;

use super::*;

const TD: &str = "td";
const WEB: &str = "spiffe://td/ns/shop/sa/web";

fn caller(identity: &str, address: &str) -> Caller {
    Caller::new(identity, address.parse().unwrap())
}

fn web() -> Caller {
    caller(WEB, "10.0.0.5")
}

fn exact(text: &str) -> pb::StringMatch {
    pb::StringMatch {
        pattern: Some(Kind::Exact(text.into())),
    }
}

fn prefix(text: &str) -> pb::StringMatch {
    pb::StringMatch {
        pattern: Some(Kind::Prefix(text.into())),
    }
}

fn suffix(text: &str) -> pb::StringMatch {
    pb::StringMatch {
        pattern: Some(Kind::Suffix(text.into())),
    }
}

fn any() -> pb::StringMatch {
    pb::StringMatch {
        pattern: Some(Kind::Any(true)),
    }
}

fn network(address: [u8; 4], prefix_len: u32) -> pb::IpNetwork {
    pb::IpNetwork {
        address: address.to_vec(),
        prefix_len,
    }
}

fn rule(policy: &str, index: u32) -> pb::AuthorizationRule {
    pb::AuthorizationRule {
        policy: policy.into(),
        index,
        ..Default::default()
    }
}

fn from(source: pb::Source) -> pb::AuthorizationRule {
    pb::AuthorizationRule {
        from: vec![source],
        ..rule("p", 0)
    }
}

fn to(operation: pb::Operation) -> pb::AuthorizationRule {
    pb::AuthorizationRule {
        to: vec![operation],
        ..rule("p", 0)
    }
}

fn audit_mode(rule: pb::AuthorizationRule) -> pb::AuthorizationRule {
    pb::AuthorizationRule {
        mode: pb::EnforcementMode::Audit.into(),
        ..rule
    }
}

fn policy(deny: Vec<pb::AuthorizationRule>, allow: Vec<pb::AuthorizationRule>) -> Policy {
    let authorization = pb::Authorization {
        deny,
        allow,
        ..Default::default()
    };
    Policy::compile(&authorization, TD)
}

/// Whether one ALLOW rule lets `caller` reach `port`.
fn allows(rule: pb::AuthorizationRule, caller: &Caller, port: u16) -> bool {
    policy(vec![], vec![rule]).decide(caller, port).allowed()
}

/// Whether one DENY rule (beside an allow-all) refuses `caller` on `port`.
fn denies(rule: pb::AuthorizationRule, caller: &Caller, port: u16) -> bool {
    !policy(vec![rule], vec![self::rule("all", 0)])
        .decide(caller, port)
        .allowed()
}

fn id(policy: &str, index: u32) -> Option<RuleId> {
    Some(RuleId {
        policy: policy.into(),
        index,
    })
}

#[test]
fn an_empty_allow_list_refuses_everyone() {
    let decision = policy(vec![], vec![]).decide(&web(), 80);

    assert!(!decision.allowed());
    assert_eq!(decision.verdict.rule, None);
    assert_eq!(decision.to_string(), "default deny");
    assert!(!Policy::deny_all().decide(&web(), 80).allowed());
}

#[test]
fn an_allow_rule_without_conditions_allows_everyone() {
    let decision = policy(vec![], vec![rule("open", 2)]).decide(&web(), 80);

    assert!(decision.allowed());
    assert_eq!(decision.verdict.rule, id("open", 2));
    assert_eq!(decision.to_string(), "open/2");
}

#[test]
fn identities_match_exactly_by_prefix_or_by_suffix() {
    let with = |patterns| {
        from(pb::Source {
            identities: patterns,
            ..Default::default()
        })
    };

    assert!(allows(with(vec![exact(WEB)]), &web(), 80));
    assert!(allows(
        with(vec![prefix("spiffe://td/ns/shop/")]),
        &web(),
        80
    ));
    assert!(allows(with(vec![suffix("/sa/web")]), &web(), 80));
    assert!(allows(with(vec![exact("x"), any()]), &web(), 80));
    assert!(!allows(
        with(vec![exact("spiffe://td/ns/shop/sa/api")]),
        &web(),
        80
    ));
    assert!(!allows(
        with(vec![prefix("spiffe://td/ns/bank/")]),
        &web(),
        80
    ));
}

#[test]
fn not_identities_exclude_the_callers_they_match() {
    let without = |patterns| {
        from(pb::Source {
            not_identities: patterns,
            ..Default::default()
        })
    };

    assert!(!allows(without(vec![suffix("/sa/web")]), &web(), 80));
    assert!(allows(without(vec![suffix("/sa/api")]), &web(), 80));
    assert!(!allows(without(vec![any()]), &web(), 80));
}

#[test]
fn namespaces_are_read_from_the_spiffe_id() {
    let namespaces = |patterns| {
        from(pb::Source {
            namespaces: patterns,
            ..Default::default()
        })
    };
    let not_namespaces = |patterns| {
        from(pb::Source {
            not_namespaces: patterns,
            ..Default::default()
        })
    };

    assert!(allows(namespaces(vec![exact("shop")]), &web(), 80));
    assert!(allows(namespaces(vec![prefix("sh")]), &web(), 80));
    assert!(allows(namespaces(vec![suffix("op")]), &web(), 80));
    assert!(!allows(namespaces(vec![exact("sho")]), &web(), 80));
    assert!(!allows(not_namespaces(vec![exact("shop")]), &web(), 80));
    assert!(allows(not_namespaces(vec![exact("bank")]), &web(), 80));
}

#[test]
fn callers_without_a_namespace_of_this_trust_domain_match_no_namespace() {
    let shop = || {
        from(pb::Source {
            namespaces: vec![exact("shop")],
            ..Default::default()
        })
    };
    let foreign = caller("spiffe://other/ns/shop/sa/web", "10.0.0.5");
    let bare = caller("spiffe://td/ns/shop", "10.0.0.5");

    assert!(!allows(shop(), &foreign, 80));
    assert!(!allows(shop(), &bare, 80));
    assert_eq!(foreign.namespace(), Some("shop"));
    assert_eq!(bare.namespace(), None);
}

#[test]
fn ip_blocks_match_the_callers_address() {
    let blocks = |ip_blocks| {
        from(pb::Source {
            ip_blocks,
            ..Default::default()
        })
    };
    let not_blocks = |not_ip_blocks| {
        from(pb::Source {
            not_ip_blocks,
            ..Default::default()
        })
    };
    let mapped = caller(WEB, "::ffff:10.0.0.5");

    assert!(allows(blocks(vec![network([10, 0, 0, 0], 8)]), &web(), 80));
    assert!(allows(blocks(vec![network([10, 0, 0, 0], 8)]), &mapped, 80));
    assert!(!allows(
        blocks(vec![network([10, 0, 1, 0], 24)]),
        &web(),
        80
    ));
    assert!(!allows(
        not_blocks(vec![network([10, 0, 0, 5], 32)]),
        &web(),
        80
    ));
    assert!(allows(
        not_blocks(vec![network([192, 0, 2, 0], 24)]),
        &web(),
        80
    ));
}

#[test]
fn every_list_of_a_source_must_hold_and_any_source_may_match() {
    let both = from(pb::Source {
        identities: vec![exact(WEB)],
        ip_blocks: vec![network([192, 0, 2, 0], 24)],
        ..Default::default()
    });
    let either = pb::AuthorizationRule {
        from: vec![
            pb::Source {
                identities: vec![exact("spiffe://td/ns/shop/sa/api")],
                ..Default::default()
            },
            pb::Source {
                ip_blocks: vec![network([10, 0, 0, 0], 8)],
                ..Default::default()
            },
        ],
        ..rule("p", 0)
    };

    assert!(!allows(both, &web(), 80));
    assert!(allows(either, &web(), 80));
}

#[test]
fn ports_match_the_destination_port() {
    let ports = |ports| {
        to(pb::Operation {
            ports,
            ..Default::default()
        })
    };
    let not_ports = |not_ports| {
        to(pb::Operation {
            not_ports,
            ..Default::default()
        })
    };

    assert!(allows(ports(vec![80, 443]), &web(), 443));
    assert!(!allows(ports(vec![80]), &web(), 8080));
    assert!(!allows(not_ports(vec![8080]), &web(), 8080));
    assert!(allows(not_ports(vec![8080]), &web(), 80));
}

#[test]
fn rules_need_both_a_matching_source_and_a_matching_operation() {
    let rule = pb::AuthorizationRule {
        from: vec![pb::Source {
            namespaces: vec![exact("shop")],
            ..Default::default()
        }],
        to: vec![pb::Operation {
            ports: vec![80],
            ..Default::default()
        }],
        ..rule("p", 0)
    };

    assert!(allows(rule.clone(), &web(), 80));
    assert!(!allows(rule.clone(), &web(), 81));
    assert!(!allows(
        rule,
        &caller("spiffe://td/ns/bank/sa/x", "10.0.0.5"),
        80
    ));
}

#[test]
fn what_tcp_cannot_see_never_allows_and_always_denies() {
    let principals = || {
        from(pb::Source {
            principals: vec![any()],
            ..Default::default()
        })
    };
    let not_principals = || {
        from(pb::Source {
            not_principals: vec![exact("iss/sub")],
            ..Default::default()
        })
    };
    let methods = || {
        to(pb::Operation {
            methods: vec![exact("GET")],
            ..Default::default()
        })
    };
    let not_paths = || {
        to(pb::Operation {
            not_paths: vec![prefix("/admin/")],
            ..Default::default()
        })
    };
    let when = || pb::AuthorizationRule {
        when: vec![pb::Condition {
            key: "request.headers[x-tenant]".into(),
            values: vec!["a".into()],
            not_values: vec![],
        }],
        ..rule("p", 0)
    };

    for unknowable in [
        principals(),
        not_principals(),
        methods(),
        not_paths(),
        when(),
    ] {
        assert!(!allows(unknowable.clone(), &web(), 80), "{unknowable:?}");
        assert!(denies(unknowable.clone(), &web(), 80), "{unknowable:?}");
    }
}

#[test]
fn unreadable_patterns_and_networks_fail_closed() {
    let pattern = || {
        from(pb::Source {
            identities: vec![pb::StringMatch { pattern: None }],
            ..Default::default()
        })
    };
    let network = || {
        from(pb::Source {
            not_ip_blocks: vec![pb::IpNetwork {
                address: vec![10, 0],
                prefix_len: 8,
            }],
            ..Default::default()
        })
    };

    assert!(!allows(pattern(), &web(), 80));
    assert!(denies(pattern(), &web(), 80));
    assert!(!allows(network(), &web(), 80));
    assert!(denies(network(), &web(), 80));
}

#[test]
fn deny_rules_are_judged_before_allow_rules() {
    let decision = policy(vec![rule("block", 1)], vec![rule("open", 0)]).decide(&web(), 80);

    assert!(!decision.allowed());
    assert_eq!(decision.verdict.rule, id("block", 1));
}

#[test]
fn the_first_matching_rule_of_a_list_decides() {
    let port = |policy: &str, index, port| pb::AuthorizationRule {
        to: vec![pb::Operation {
            ports: vec![port],
            ..Default::default()
        }],
        ..rule(policy, index)
    };
    let allow = vec![port("a", 0, 81), port("b", 0, 80), port("c", 3, 80)];
    let deny = vec![port("x", 0, 90), port("y", 2, 90)];
    let policy = policy(deny, allow);

    assert_eq!(policy.decide(&web(), 80).verdict.rule, id("b", 0));
    assert_eq!(policy.decide(&web(), 90).verdict.rule, id("x", 0));
    assert_eq!(policy.decide(&web(), 91).verdict.rule, None);
}

fn verdict(allowed: bool, rule: Option<RuleId>) -> Verdict {
    Verdict { allowed, rule }
}

#[test]
fn audit_mode_rules_only_report_what_they_would_have_done() {
    // The Service's only ALLOW policy, tried in audit mode: callers stay
    // refused, as without it, and the dry run says it would let them in.
    let trial_allow = policy(vec![], vec![audit_mode(rule("would-open", 1))]);
    // A DENY policy tried beside an enforced ALLOW: callers stay allowed,
    // and the dry run says it would refuse them.
    let trial_deny = policy(
        vec![audit_mode(rule("would-block", 0))],
        vec![rule("open", 0)],
    );

    let refused = trial_allow.decide(&web(), 80);
    let allowed = trial_deny.decide(&web(), 80);

    assert_eq!(refused.verdict, verdict(false, None));
    assert_eq!(refused.dry_run, Some(verdict(true, id("would-open", 1))));
    assert_eq!(allowed.verdict, verdict(true, id("open", 0)));
    assert_eq!(allowed.dry_run, Some(verdict(false, id("would-block", 0))));
    assert!(refused.audited.is_empty() && allowed.audited.is_empty());
}

#[test]
fn a_policy_in_audit_mode_changes_no_decision() {
    let web_only = from(pb::Source {
        identities: vec![exact(WEB)],
        ..Default::default()
    });
    let enforced = policy(vec![], vec![rule("open", 0)]);
    let with_trials = policy(
        vec![audit_mode(web_only.clone())],
        vec![rule("open", 0), audit_mode(rule("extra", 0))],
    );
    let other = caller("spiffe://td/ns/shop/sa/batch", "10.0.0.6");

    for caller in [web(), other.clone()] {
        assert_eq!(
            with_trials.decide(&caller, 80).verdict,
            enforced.decide(&caller, 80).verdict,
            "{}",
            caller.identity
        );
    }
    assert_eq!(
        with_trials.decide(&web(), 80).dry_run,
        Some(verdict(false, id("p", 0)))
    );
    assert_eq!(with_trials.decide(&other, 80).dry_run, None);
}

#[test]
fn a_dry_run_that_decides_alike_is_not_reported() {
    let policy = policy(
        vec![rule("block", 0), audit_mode(rule("would-block", 1))],
        vec![audit_mode(rule("would-open", 0))],
    );

    let decision = policy.decide(&web(), 80);

    assert_eq!(decision.verdict, verdict(false, id("block", 0)));
    assert_eq!(decision.dry_run, None);
}

#[test]
fn audit_rules_are_reported_whatever_their_mode_and_never_decide() {
    let authorization = pb::Authorization {
        allow: vec![rule("open", 0)],
        audit: vec![
            rule("watch", 0),
            audit_mode(rule("watch", 1)),
            to(pb::Operation {
                ports: vec![1],
                ..Default::default()
            }),
        ],
        ..Default::default()
    };

    let decision = Policy::compile(&authorization, TD).decide(&web(), 80);

    assert!(decision.allowed());
    assert_eq!(decision.verdict.rule, id("open", 0));
    assert_eq!(decision.dry_run, None);
    let audited: Vec<_> = decision.audited.iter().map(RuleId::to_string).collect();
    assert_eq!(audited, ["watch/0", "watch/1"]);
}

#[test]
fn an_unknown_mode_fails_closed() {
    let unknown = |rule: pb::AuthorizationRule| pb::AuthorizationRule { mode: 7, ..rule };

    let allow_only = policy(vec![], vec![unknown(rule("open", 0))]);
    let with_deny = policy(vec![unknown(rule("block", 0))], vec![rule("open", 0)]);

    assert!(!allow_only.decide(&web(), 80).allowed());
    assert_eq!(with_deny.decide(&web(), 80).verdict.rule, id("block", 0));
}

#[test]
fn callers_are_read_from_their_spiffe_id() {
    let web = web();
    let odd = caller("not a spiffe id", "::ffff:127.0.0.1");

    assert_eq!(web.namespace(), Some("shop"));
    assert_eq!(odd.namespace(), None);
    assert_eq!(odd.address, "127.0.0.1".parse::<IpAddr>().unwrap());
}
