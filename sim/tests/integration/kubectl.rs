//! Real kubectl against the simulator.

use std::time::Duration;

use anyhow::{Context as _, Result};
use meridian_testkit::wait::{eventually, eventually_sync};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::support::{Env, WAIT, lb_service};

/// `get` in table, wide, json and yaml forms shows seeded objects with controller results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_shows_services_across_namespaces_in_every_output_format() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    c.apply_json(lb_service("web", "default", 80))?;
    c.apply_json(lb_service("api", "prod", 8080))?;
    let ip = c
        .get_json("v1", "Service", Some("prod"), "api")
        .and_then(|s| s.pointer("/status/loadBalancer/ingress/0/ip").and_then(Value::as_str).map(String::from))
        .context("api has no LB ip")?;

    let table = env.kubectl(&["get", "svc", "-A"]).await?;
    let header = table.lines().next().unwrap_or("");
    for col in ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] {
        assert!(header.contains(col), "missing column {col} in {table}");
    }
    let api_row = table.lines().find(|l| l.starts_with("prod")).context("no prod row")?;
    assert!(
        api_row.contains("api")
            && api_row.contains("LoadBalancer")
            && api_row.contains(&ip)
            && api_row.contains("8080:3"),
        "{api_row}"
    );

    let wide = env.kubectl(&["get", "svc", "-A", "-o", "wide"]).await?;
    assert!(wide.contains("SELECTOR") && wide.contains("app=api"), "{wide}");

    let list: Value = serde_json::from_str(&env.kubectl(&["get", "svc", "-A", "-o", "json"]).await?)?;
    let names: Vec<&str> = list["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    // `kubernetes` is the API server's own Service in `default`.
    assert_eq!(names, vec!["kubernetes", "web", "api"]);

    let yaml = env.kubectl(&["get", "svc", "api", "-n", "prod", "-o", "yaml"]).await?;
    assert!(yaml.contains("kind: Service") && yaml.contains(&format!("ip: {ip}")), "{yaml}");

    let jp = env
        .kubectl(&["get", "svc", "api", "-n", "prod", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"])
        .await?;
    assert_eq!(jp, ip);

    let nodes = env.kubectl(&["get", "nodes", "-L", "topology.kubernetes.io/zone"]).await?;
    assert!(nodes.contains("east-node-0") && nodes.contains("Ready") && nodes.contains("eu-west-1a"), "{nodes}");

    let slices = env
        .kubectl(&["get", "endpointslices", "-n", "prod", "-l", "kubernetes.io/service-name=api", "-o", "name"])
        .await?;
    assert_eq!(slices.trim(), "endpointslice.discovery.k8s.io/api-sim");
    Ok(())
}

/// `create -f`, client-side `apply -f` and `apply --server-side -f` all work without
/// `--validate=false`, and updates bump generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_apply_and_server_side_apply_work_with_validation() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let deploy = |replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  labels: {{app: api}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: api}}}}\n  template:\n    metadata: {{labels: {{app: api}}}}\n    spec:\n      containers:\n      - name: api\n        image: nginx\n"
        )
    };
    let f = env.manifest("d1.yaml", &deploy(1))?;
    assert!(env.kubectl(&["create", "-f", &f]).await?.contains("deployment.apps/api created"));
    let dup = env.kubectl_err(&["create", "-f", &f]).await?;
    assert!(dup.contains("already exists"), "{dup}");

    let f = env.manifest("d2.yaml", &deploy(3))?;
    assert!(env.kubectl(&["apply", "-f", &f]).await?.contains("configured"));
    let d = c.get_json("apps/v1", "Deployment", Some("default"), "api").context("deployment")?;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);
    // The workload controller reports the rollout done.
    let ready = eventually_sync(WAIT, "readyReplicas=3", || {
        c.get_json("apps/v1", "Deployment", Some("default"), "api")
            .filter(|d| d.pointer("/status/readyReplicas") == Some(&json!(3)))
    })
    .await?;
    assert_eq!(ready["status"]["observedGeneration"], 2);
    env.kubectl(&["rollout", "status", "deploy/api", "--timeout=10s"]).await?;

    let f = env.manifest("d3.yaml", &deploy(5))?;
    assert!(env.kubectl(&["apply", "--server-side", "-f", &f]).await?.contains("serverside-applied"));
    let d = c.get_json("apps/v1", "Deployment", Some("default"), "api").context("deployment")?;
    assert_eq!(d["spec"]["replicas"], 5);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .context("managedFields")?
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");

    // Server-side apply also creates.
    let f = env.manifest(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: ssa\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 81\n",
    )?;
    env.kubectl(&["apply", "--server-side", "-f", &f]).await?;
    assert!(c.get_json("v1", "Service", Some("default"), "ssa").is_some());

    // Namespaces must exist.
    let err = env.kubectl_err(&["create", "-f", &f, "-n", "missing"]).await?;
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");
    Ok(())
}

/// label, annotate (strategic merge patch) and patch of all three types change the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_annotate_and_patch_modify_services() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    c.apply_json(lb_service("web", "default", 80))?;
    env.kubectl(&["label", "svc", "web", "tier=front"]).await?;
    env.kubectl(&["annotate", "svc", "web", "note=hi"]).await?;
    env.kubectl(&["patch", "svc", "web", "--type=merge", "-p", r#"{"metadata":{"labels":{"m":"1"}}}"#]).await?;
    env.kubectl(&[
        "patch",
        "svc",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/j","value":"2"}]"#,
    ])
    .await?;
    env.kubectl(&["patch", "svc", "web", "-p", r#"{"spec":{"ports":[{"port":80,"name":"web"}]}}"#]).await?;
    let s = c.get_json("v1", "Service", Some("default"), "web").context("svc")?;
    assert_eq!(s["metadata"]["labels"], json!({"app": "web", "tier": "front", "m": "1", "j": "2"}));
    assert_eq!(s["metadata"]["annotations"]["note"], "hi");
    assert_eq!(s["spec"]["ports"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["spec"]["ports"][0]["name"], "web");
    env.kubectl(&["label", "svc", "web", "tier-"]).await?;
    let s = c.get_json("v1", "Service", Some("default"), "web").context("svc")?;
    assert!(s.pointer("/metadata/labels/tier").is_none());

    // Marking endpoints not ready through kubectl reaches the EndpointSlice.
    env.kubectl(&["annotate", "svc", "web", "sim.meridian.io/ready=false", "--overwrite"]).await?;
    eventually_sync(WAIT, "endpoints not ready", || {
        c.get_json("discovery.k8s.io/v1", "EndpointSlice", Some("default"), "web-sim").filter(|s| {
            s["endpoints"]
                .as_array()
                .is_some_and(|e| !e.is_empty() && e.iter().all(|e| e["conditions"]["ready"] == false))
        })
    })
    .await?;
    let err = env.kubectl_err(&["get", "svc", "nope"]).await?;
    assert!(err.contains("services \"nope\" not found"), "{err}");
    Ok(())
}

/// `kubectl get -w` prints a row for a change made after it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_new_services() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    c.apply_json(lb_service("first", "default", 80))?;
    let mut child = env.spawn_kubectl(&["get", "svc", "-w"])?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let read = async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("first") && !seen.iter().any(|l: &String| l.starts_with("first")) {
                // The initial list is printed: now change something.
                c.apply_json(lb_service("second", "default", 81))?;
            }
            let done = line.starts_with("second");
            seen.push(line);
            if done {
                return anyhow::Ok(seen);
            }
        }
        anyhow::bail!("kubectl get -w ended early: {seen:?}")
    };
    let seen = tokio::time::timeout(Duration::from_secs(20), read).await.context("no watch output")??;
    child.kill().await?;
    assert!(seen[0].contains("NAME") && seen[0].contains("EXTERNAL-IP"), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("second") && l.contains("LoadBalancer")), "{seen:?}");
    Ok(())
}

/// `get -o wide` shows the priority-1 columns of kube-apiserver's table printers:
/// a workload's containers, images and selector, a node's addresses and runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_wide_shows_the_printer_columns_of_a_real_server() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    env.kubectl(&["create", "deployment", "web", "--image=nginx:1.27"]).await?;
    let wide = env.kubectl(&["get", "deploy", "-o", "wide"]).await?;
    let header: Vec<&str> = wide.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
        "{wide}"
    );
    let row: Vec<&str> = wide.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(row.get(5..), Some(&["nginx", "nginx:1.27", "app=web"][..]), "{wide}");
    let rs = eventually(WAIT, "the ReplicaSet", || async {
        env.kubectl(&["get", "rs", "-o", "wide"]).await.ok().filter(|o| o.contains("pod-template-hash="))
    })
    .await?;
    assert!(rs.lines().next().unwrap_or("").contains("SELECTOR") && rs.contains("app=web,pod-template-hash="), "{rs}");
    let nodes = env.kubectl(&["get", "nodes", "-o", "wide"]).await?;
    let header = nodes.lines().next().unwrap_or("");
    for col in ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"] {
        assert!(header.contains(col), "{col}: {nodes}");
    }
    assert!(nodes.contains("172.18.") && nodes.contains("sim://1.0"), "{nodes}");
    Ok(())
}

/// `kubectl explain` reads the fields and descriptions of the built-in kinds from the
/// server's OpenAPI v3 documents, as from kube-apiserver's: nested fields, their types,
/// and a field that is not there named as such.
#[tokio::test]
async fn explain_finds_the_fields_of_built_in_kinds() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let ports = env.kubectl(&["explain", "service.spec.ports"]).await?;
    assert!(ports.contains("KIND:") && ports.contains("Service"), "{ports}");
    assert!(ports.contains("FIELD: ports <[]ServicePort>"), "{ports}");
    assert!(ports.contains("targetPort") && ports.contains("nodePort"), "{ports}");
    let strategy = env.kubectl(&["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"]).await?;
    assert!(strategy.contains("GROUP:") && strategy.contains("apps"), "{strategy}");
    assert!(strategy.contains("maxSurge <IntOrString>"), "{strategy}");
    let recursive = env.kubectl(&["explain", "ingress.spec", "--recursive"]).await?;
    assert!(recursive.contains("pathType") && recursive.contains("ingressClassName"), "{recursive}");
    let missing = env.kubectl_output(&["explain", "service.spec.nonsense"]).await?;
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && err.contains("nonsense"), "{err}");
    Ok(())
}
