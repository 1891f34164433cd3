//! The gRPC service KEDA calls, over the controller's [`SharedView`].
//!
//! | RPC | answer |
//! |---|---|
//! | `GetMetricSpec` | one metric, [`METRIC_NAME`], target [`TARGET`] (1) |
//! | `GetMetrics` | that metric's value: wvo's desired replicas for the variant |
//! | `IsActive` | desired replicas > 0 |
//! | `StreamIsActive` | the same, sent at once and then each time a cycle changes it |
//!
//! Errors are gRPC statuses: `InvalidArgument` (trigger metadata), `NotFound` (VA or
//! variant not in the last plan), `FailedPrecondition` (the VA is not for KEDA: `scale` or
//! `hpa` mode, or a dry run), `Unavailable` (no cycle yet, a standby replica, the loop
//! stopped). Each handler copies its answer out of the view and releases the lock before
//! any await.

use crate::proto::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use crate::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use crate::scaler::{self, ErrorKind, ScalerError, VariantKey, METRIC_NAME, TARGET};
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use wvo_controller::view::SharedView;

/// The external scaler over one controller view.
#[derive(Clone)]
pub struct Scaler {
    view: SharedView,
    /// Turns true when the server shuts down: open `StreamIsActive` streams end then.
    stop: watch::Receiver<bool>,
}

/// Errors serving the scaler.
#[derive(Debug, thiserror::Error)]
pub enum KedaError {
    /// The gRPC server failed (accepting connections).
    #[error("KEDA external scaler server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

impl Scaler {
    /// A scaler over `view` whose streams end when `stop` turns true (or its sender goes).
    pub fn new(view: SharedView, stop: watch::Receiver<bool>) -> Self {
        Self { view, stop }
    }

    /// The desired replicas for `key`, read from the view (lock held only for the read).
    fn desired(&self, key: &VariantKey) -> Result<u32, ScalerError> {
        let view = self.view.read().map_err(|_| ScalerError::ViewPoisoned)?;
        scaler::desired_replicas(&view, key)
    }
}

/// The gRPC status for a scaler error, with its message.
fn status(e: &ScalerError) -> Status {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::InvalidArgument => Status::invalid_argument(message),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::FailedPrecondition => Status::failed_precondition(message),
        ErrorKind::Unavailable => Status::unavailable(message),
        ErrorKind::Internal => Status::internal(message),
    }
}

fn key_of(r: &ScaledObjectRef) -> Result<VariantKey, Status> {
    scaler::parse_key(&r.namespace, &r.scaler_metadata).map_err(|e| status(&e))
}

/// The stream type of `StreamIsActive`.
pub type ActiveStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for Scaler {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let key = key_of(request.get_ref())?;
        let desired = self.desired(&key).map_err(|e| status(&e))?;
        Ok(Response::new(IsActiveResponse {
            result: scaler::is_active(desired),
        }))
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<ActiveStream>, Status> {
        let key = key_of(request.get_ref())?;
        let mut cycles = match self.view.read() {
            Ok(v) => v.cycle_signal.subscribe(),
            Err(_) => return Err(status(&ScalerError::ViewPoisoned)),
        };
        // Marks the current cycle seen before the first read: a cycle published after it
        // wakes the stream.
        cycles.borrow_and_update();
        // An error now fails the call (KEDA retries with a backoff); a later one ends it.
        let first = self.desired(&key).map_err(|e| status(&e))?;
        let state = ActiveState {
            scaler: self.clone(),
            key,
            cycles,
            last: None,
            first: Some(scaler::is_active(first)),
            ended: false,
        };
        Ok(Response::new(Box::pin(futures::stream::unfold(
            state,
            next_active,
        ))))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let key = key_of(request.get_ref())?;
        // Answers only for a variant wvo can serve: a wrong trigger fails here, when KEDA
        // builds the HPA, not later.
        self.desired(&key).map_err(|e| status(&e))?;
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: METRIC_NAME.to_string(),
                target_size: i64::from(TARGET),
                target_size_float: f64::from(TARGET),
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let request = request.get_ref();
        if request.metric_name != METRIC_NAME {
            return Err(status(&ScalerError::UnknownMetric(
                request.metric_name.clone(),
            )));
        }
        let scaled_object = request.scaled_object_ref.clone().unwrap_or_default();
        let key = key_of(&scaled_object)?;
        let desired = self.desired(&key).map_err(|e| status(&e))?;
        let (metric_value, metric_value_float) = scaler::metric_value(desired);
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: METRIC_NAME.to_string(),
                metric_value,
                metric_value_float,
            }],
        }))
    }
}

/// What one `StreamIsActive` stream remembers between items.
struct ActiveState {
    scaler: Scaler,
    key: VariantKey,
    cycles: watch::Receiver<u64>,
    /// The last answer sent.
    last: Option<bool>,
    /// The answer read when the stream opened, sent first.
    first: Option<bool>,
    /// True once an error was sent: the stream ends after it.
    ended: bool,
}

/// The stream's next item: the first answer, then each change after a cycle; an error
/// (the VA deleted, leadership lost) ends it, and so do the server's shutdown and the
/// view's signal going away.
async fn next_active(
    mut s: ActiveState,
) -> Option<(Result<IsActiveResponse, Status>, ActiveState)> {
    if s.ended {
        return None;
    }
    if let Some(active) = s.first.take() {
        s.last = Some(active);
        return Some((Ok(IsActiveResponse { result: active }), s));
    }
    loop {
        let mut stop = s.scaler.stop.clone();
        if *stop.borrow_and_update() {
            return None;
        }
        tokio::select! {
            changed = s.cycles.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            _ = stop.changed() => return None,
        }
        match s.scaler.desired(&s.key) {
            Ok(desired) => {
                let active = scaler::is_active(desired);
                if s.last != Some(active) {
                    s.last = Some(active);
                    return Some((Ok(IsActiveResponse { result: active }), s));
                }
            }
            Err(e) => {
                s.ended = true;
                return Some((Err(status(&e)), s));
            }
        }
    }
}

/// The tonic service for `view` (for callers that build their own server).
pub fn service(view: SharedView, stop: watch::Receiver<bool>) -> ExternalScalerServer<Scaler> {
    ExternalScalerServer::new(Scaler::new(view, stop))
}

/// Serves the scaler over plain HTTP/2 (h2c) on `listener` until `shutdown` completes;
/// open streams then end, and the call returns once every connection closed.
pub async fn serve(
    listener: TcpListener,
    view: SharedView,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), KedaError> {
    let (stop_tx, stop) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        // Ends the open streams, or the graceful shutdown would wait for them forever.
        stop_tx.send_replace(true);
    };
    tonic::transport::Server::builder()
        // Detects a KEDA that went away without closing its streams.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(service(view, stop))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            signal,
        )
        .await?;
    Ok(())
}
