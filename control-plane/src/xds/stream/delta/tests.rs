use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

use super::*;
use crate::xds::view::Served;

const TYPE: &str = "type.googleapis.com/palisade.xds.v1.Workload";

/// A view holding `names` of [`TYPE`], each at version `v1`.
fn view(names: &[&str]) -> View {
    let resources = names
        .iter()
        .map(|name| {
            let served = Served {
                name: name.to_string(),
                version: "v1".into(),
                any: Any::default(),
            };
            (name.to_string(), Arc::new(served))
        })
        .collect();
    View {
        revision: 1,
        types: BTreeMap::from([(TYPE.to_owned(), resources)]),
        closed: None,
    }
}

fn request(subscribe: &[&str], unsubscribe: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: TYPE.into(),
        resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

/// A stream state after `first`, holding everything the view sent for it.
fn delivered(view: &View, first: DeltaDiscoveryRequest) -> TypeState {
    let mut state = TypeState::default();
    subscribe(&mut state, &first, true);
    let (resources, removed) = difference(view, TYPE, &state);
    expect_applied(&mut state, &resources, &removed);
    state
}

fn names(resources: &[Resource]) -> Vec<&str> {
    resources.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn unsubscribing_a_name_under_the_wildcard_resends_nothing() {
    let view = view(&["a", "b"]);
    let mut state = delivered(&view, request(&["*", "a"], &[]));

    subscribe(&mut state, &request(&[], &["a"]), false);

    let (resources, removed) = difference(&view, TYPE, &state);
    assert!(resources.is_empty(), "resent {:?}", names(&resources));
    assert!(removed.is_empty(), "removed {removed:?}");
    assert!(
        state.held.contains_key("a"),
        "a still comes through the wildcard"
    );
}

#[test]
fn name_unsubscribed_under_the_wildcard_is_still_reported_removed() {
    let mut state = delivered(&view(&["a", "b"]), request(&["*", "a"], &[]));
    subscribe(&mut state, &request(&[], &["a"]), false);

    let (_, removed) = difference(&view(&["b"]), TYPE, &state);

    assert_eq!(removed, ["a"]);
}

#[test]
fn unsubscribing_the_wildcard_forgets_what_only_it_gave() {
    let mut state = delivered(&view(&["a", "b", "c"]), request(&["*", "a"], &[]));

    subscribe(&mut state, &request(&[], &["*"]), false);

    assert_eq!(state.held.keys().collect::<Vec<_>>(), ["a"]);
    let (resources, removed) = difference(&view(&["a"]), TYPE, &state);
    assert!(resources.is_empty(), "sent {:?}", names(&resources));
    assert!(
        removed.is_empty(),
        "b and c are not the client's any more: {removed:?}"
    );
}

#[test]
fn unsubscribing_a_name_without_the_wildcard_forgets_it() {
    let view = view(&["a", "b"]);
    let mut state = delivered(&view, request(&["a", "b"], &[]));

    subscribe(&mut state, &request(&[], &["a"]), false);

    assert_eq!(state.held.keys().collect::<Vec<_>>(), ["b"]);
    let (resources, removed) = difference(&view, TYPE, &state);
    assert!(resources.is_empty() && removed.is_empty());
}

#[test]
fn resubscribing_the_wildcard_sends_what_the_client_forgot() {
    let view = view(&["a", "b"]);
    let mut state = delivered(&view, request(&["*"], &[]));
    subscribe(&mut state, &request(&[], &["*"]), false);

    subscribe(&mut state, &request(&["*"], &[]), false);

    let (resources, _) = difference(&view, TYPE, &state);
    assert_eq!(names(&resources), ["a", "b"]);
}

#[test]
fn naming_nothing_is_the_wildcard_only_on_the_first_request() {
    let view = view(&["a", "b"]);
    let mut state = delivered(&view, request(&[], &[]));
    assert!(
        state.wildcard,
        "a first request naming nothing asks for everything"
    );

    subscribe(&mut state, &request(&["a"], &[]), false);
    subscribe(&mut state, &request(&[], &["*"]), false);
    subscribe(&mut state, &request(&[], &["a"]), false);
    subscribe(&mut state, &request(&[], &[]), false);

    assert!(!state.wildcard && state.names.is_empty() && state.held.is_empty());
    let (resources, removed) = difference(&view, TYPE, &state);
    assert!(resources.is_empty(), "sent {:?}", names(&resources));
    assert!(removed.is_empty(), "removed {removed:?}");
}

#[test]
fn removed_subscribed_resource_is_reported_once() {
    let mut state = delivered(&view(&["a", "b"]), request(&["a"], &[]));
    let without_a = view(&["b"]);

    let (_, removed) = difference(&without_a, TYPE, &state);
    assert_eq!(removed, ["a"]);
    expect_applied(&mut state, &[], &removed);

    let (resources, again) = difference(&without_a, TYPE, &state);
    assert!(
        resources.is_empty() && again.is_empty(),
        "reported again: {again:?}"
    );
}

#[test]
fn a_group_says_how_many_responses_follow_each_and_its_last_is_the_bare_revision() {
    let response = |type_url: &str| DeltaDiscoveryResponse {
        system_version_info: "17".into(),
        type_url: type_url.into(),
        ..Default::default()
    };
    let mut group = vec![response("a"), response("b"), response("c")];
    let mut alone = vec![response("a")];

    mark_group(&mut group);
    mark_group(&mut alone);

    let versions: Vec<&str> = group
        .iter()
        .map(|r| r.system_version_info.as_str())
        .collect();
    assert_eq!(versions, ["17+2", "17+1", "17"]);
    assert_eq!(alone[0].system_version_info, "17");
}
