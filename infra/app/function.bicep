// The function app on Flex Consumption, with app settings that name endpoints and the app's identity only.
param name string
param location string
param tags object
param planId string
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param serviceBusNamespaceName string
param restoreRequestsQueue string
param browseRequestsQueue string
param activationRequestsQueue string
param restoreEventsTopic string
param ledgerTable string
param graphTenantId string
param inPlaceRequiresApproval bool
param maxDeliveryCount int
param maxActiveSessions int
param maximumInstanceCount int
param instanceMemoryMB int

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-01-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Every value is an endpoint, a name or the identity's client id. The one `*_CONNECTION_STRING` is Application
// Insights': it names the component and its ingestion endpoint, and holds no secret (local authentication is off
// on the component, so ingestion needs the identity's Entra token, per APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
var appSettings = {
  // Host storage (timer schedule monitor, host leases), by identity: AzureWebJobsStorage has no connection string.
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId

  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

  // Service Bus, for the triggers (the host) and the app's own senders (settings.py reads the same prefix).
  ServiceBusConnection__fullyQualifiedNamespace: '${serviceBusNamespaceName}.servicebus.windows.net'
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId
  RESTORE_REQUESTS_QUEUE: restoreRequestsQueue
  BROWSE_REQUESTS_QUEUE: browseRequestsQueue
  ACTIVATION_REQUESTS_QUEUE: activationRequestsQueue
  RESTORE_EVENTS_TOPIC: restoreEventsTopic
  MESSAGE_MAX_DELIVERY_COUNT: string(maxDeliveryCount) // equal to the queues' MaxDeliveryCount

  // The ledger: this account's table endpoint, by identity.
  LEDGER_CONNECTION__tableServiceUri: storageAccount.properties.primaryEndpoints.table
  LEDGER_CONNECTION__credential: 'managedidentity'
  LEDGER_CONNECTION__clientId: identityClientId
  LEDGER_TABLE: ledgerTable

  // Microsoft Graph, app-only with the managed identity (no GRAPH_CLIENT_SECRET, no certificate).
  GRAPH_TENANT_ID: graphTenantId
  GRAPH_CLIENT_ID: identityClientId

  IN_PLACE_REQUIRES_APPROVAL: inPlaceRequiresApproval ? 'true' : 'false'
  MAX_ACTIVE_SESSIONS: string(maxActiveSessions)
}

module site 'br/public:avm/res/web/site:0.15.1' = {
  name: 'site'
  params: {
    kind: 'functionapp,linux'
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    serverFarmResourceId: planId
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [
        identityId
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageAccount.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11' // requirements.txt: azure-functions 1.x, Python 3.11/3.12
      }
    }
    siteConfig: {
      alwaysOn: false
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    httpsOnly: true
    appSettingsKeyValuePairs: appSettings
  }
}

output name string = site.outputs.name
