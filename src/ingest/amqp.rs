//! RabbitMQ: topology, consuming, acknowledging and dead-lettering (filled in below).
