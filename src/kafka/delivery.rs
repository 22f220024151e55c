//! Waiting for producer acknowledgements before offsets are stored.

use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;

use crate::error::StageError;

/// Waits for every delivery report; the first failure is the error.
pub async fn acknowledged(
    deliveries: impl IntoIterator<Item = DeliveryFuture>,
    action: &'static str,
) -> Result<(), StageError> {
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((source, _))) => return Err(StageError::Kafka { action, source }),
            Err(_) => {
                return Err(StageError::Kafka {
                    action,
                    source: KafkaError::Canceled,
                })
            }
        }
    }
    Ok(())
}
