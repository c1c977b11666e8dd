// The restore orchestrator in one resource group: a Flex Consumption function app (Python) with a user-assigned
// managed identity, the Service Bus namespace with the contract's queues and events topic, the storage account
// (host storage, deployment package, ledger table) and Application Insights. Every connection is identity-based:
// no account key, SAS key or connection string is read, stored or handed to the app.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; a short hash of it (with the subscription and location) names the resources.')
param environmentName string

@minLength(1)
@description('Location of every resource; one where Flex Consumption is offered.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('GRAPH_TENANT_ID: the Microsoft 365 tenant restored from. The app signs in to Graph with its managed identity, which lives in this subscription\'s tenant, so leave it empty (this tenant) unless you know better.')
param graphTenantId string = ''

@description('IN_PLACE_REQUIRES_APPROVAL: when true, `activate: true` never activates an in-place restore session; an approver\'s activation request does.')
param inPlaceRequiresApproval bool = true

@description('Object ids of the approvers of in-place restores (users, groups or identities), comma-separated. Each gets Azure Service Bus Data Sender on activation-requests and nothing else.')
param approverPrincipalIds string = ''

@description('Object ids of the automation that submits restore and browse requests (a playbook\'s identity, a group), comma-separated. Each gets Azure Service Bus Data Sender on restore-requests and browse-requests.')
param requesterPrincipalIds string = ''

@description('Object ids of the readers of the events (comma-separated). Each gets Azure Service Bus Data Receiver on the example subscription `all` of restore-events.')
param eventReaderPrincipalIds string = ''

@description('The user running azd (AZURE_PRINCIPAL_ID). Gets what the first request in the README needs: send on restore-requests and receive on the example subscription; never the approval right. Empty: nothing.')
param principalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
@description('Kind of principal `principalId` is.')
param principalType string = 'User'

@minValue(1)
@maxValue(2000)
@description('MaxDeliveryCount of the three queues, and the app\'s MESSAGE_MAX_DELIVERY_COUNT (they must be equal: on the last delivery the app reports a failure before Service Bus dead-letters the message).')
param maxDeliveryCount int = 10

@description('Duplicate detection window of the events topic (ISO 8601). Re-published events carry the ids they were first sent with; the window must outlast the retry budget (8 attempts, delays up to RETRY_MAX_DELAY_SECONDS = 15 min: about 37 min in all), and Service Bus allows at most 7 days.')
param eventsDuplicateDetectionWindow string = 'PT1H'

@minValue(1)
@maxValue(25)
@description('MAX_ACTIVE_SESSIONS: restore sessions this service keeps activating or active at once (Graph\'s cap is 25 per tenant; set it lower to leave slots to other tools).')
param maxActiveSessions int = 25

@description('Flex Consumption: the most instances the app scales out to.')
param maximumInstanceCount int = 100

@allowed([2048, 4096])
@description('Flex Consumption: memory of each instance (MB).')
param instanceMemoryMB int = 2048

@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS'])
@description('Redundancy of the storage account that holds the ledger.')
param storageSkuName string = 'Standard_LRS'

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

// Entity names are the contract's (and the app settings' defaults): automation is written against them.
var restoreRequestsQueue = 'restore-requests'
var browseRequestsQueue = 'browse-requests'
var activationRequestsQueue = 'activation-requests'
var restoreEventsTopic = 'restore-events'
var exampleSubscription = 'all'
var ledgerTable = 'restoreledger'

var functionAppName = '${abbrs.webSitesFunctions}restore-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var serviceBusNamespaceName = '${abbrs.serviceBusNamespaces}${resourceToken}'
var graphTenant = empty(graphTenantId) ? tenant().tenantId : graphTenantId

// Comma-separated object ids (azd passes environment values as strings) -> arrays without blanks or repeats
// (union drops repeats). The deployer's own grants come from `principalId`, so it is left out of the lists
// that would grant it the same role on the same entity twice.
var approvers = union(filter(map(split(approverPrincipalIds, ','), id => trim(id)), id => !empty(id)), [])
var requesters = union(filter(map(split(requesterPrincipalIds, ','), id => trim(id)), id => !empty(id) && id != principalId), [])
var eventReaders = union(filter(map(split(eventReaderPrincipalIds, ','), id => trim(id)), id => !empty(id) && id != principalId), [])

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The app's one identity: Service Bus, storage, Application Insights and Microsoft Graph all see this principal.
module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}restore-${resourceToken}'
    location: location
    tags: tags
  }
}

module serviceBus 'br/public:avm/res/service-bus/namespace:0.9.0' = {
  name: 'serviceBus'
  scope: rg
  params: {
    name: serviceBusNamespaceName
    location: location
    tags: tags
    // Standard: topics (Basic has none) and 256 KB messages, which EVENT_MAX_BYTES (240,000) is sized for.
    skuObject: {
      name: 'Standard'
    }
    zoneRedundant: false // a Premium feature
    disableLocalAuth: true // no SAS: Microsoft Entra ID only
    authorizationRules: [] // and no shared access policies to list keys of
    publicNetworkAccess: 'Enabled'
    queues: [
      for queueName in [restoreRequestsQueue, browseRequestsQueue, activationRequestsQueue]: {
        name: queueName
        // Equal to MESSAGE_MAX_DELIVERY_COUNT (set from the same parameter below).
        maxDeliveryCount: maxDeliveryCount
        // One minute, as the emulator's Config.json: the host renews the lock for up to
        // maxAutoLockRenewalDuration (host.json, 10 min); a crashed worker's message comes back within a minute.
        lockDuration: 'PT1M'
        // Off, as locally: the ledger makes a second copy harmless, and a resubmitted dead letter keeps its
        // MessageId, which duplicate detection would drop without a word.
        requiresDuplicateDetection: false
        requiresSession: false
        deadLetteringOnMessageExpiration: true
        defaultMessageTimeToLive: 'P14D'
        authorizationRules: []
      }
    ]
    topics: [
      {
        name: restoreEventsTopic
        // Event ids are deterministic: a re-publish after a redelivery or a retry is dropped here.
        requiresDuplicateDetection: true
        duplicateDetectionHistoryTimeWindow: eventsDuplicateDetectionWindow
        defaultMessageTimeToLive: 'P14D'
        authorizationRules: []
        subscriptions: [
          {
            // An example: every event. Add filtered subscriptions on the application properties
            // (type, requestId, incidentId, sessionId) for each consumer.
            name: exampleSubscription
            maxDeliveryCount: 10
            lockDuration: 'PT1M'
            defaultMessageTimeToLive: 'P14D'
            deadLetteringOnMessageExpiration: true
            autoDeleteOnIdle: 'P10675199DT2H48M5.4775807S' // never (the module's default deletes it after 1 hour idle)
          }
        ]
      }
    ]
  }
}

module storage 'br/public:avm/res/storage/storage-account:0.8.3' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    kind: 'StorageV2'
    skuName: storageSkuName
    allowSharedKeyAccess: false // no account keys: host storage, the deployment package and the ledger use identity
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [
        {
          name: deploymentContainerName
          publicAccess: 'None'
        }
      ]
    }
    tableServices: {
      tables: [
        {
          name: ledgerTable // LEDGER_TABLE; created here because the app's role covers this table only
        }
      ]
    }
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  name: 'logAnalytics'
  scope: rg
  params: {
    name: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30
  }
}

module monitoring 'br/public:avm/res/insights/component:0.6.0' = {
  name: 'monitoring'
  scope: rg
  params: {
    name: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true // telemetry is accepted only with a Microsoft Entra token (Monitoring Metrics Publisher)
  }
}

module plan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'plan'
  scope: rg
  params: {
    name: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
  }
}

module app 'app/function.bicep' = {
  name: 'functionApp'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    planId: plan.outputs.resourceId
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    restoreRequestsQueue: restoreRequestsQueue
    browseRequestsQueue: browseRequestsQueue
    activationRequestsQueue: activationRequestsQueue
    restoreEventsTopic: restoreEventsTopic
    ledgerTable: ledgerTable
    graphTenantId: graphTenant
    inPlaceRequiresApproval: inPlaceRequiresApproval
    maxDeliveryCount: maxDeliveryCount
    maxActiveSessions: maxActiveSessions
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'roleAssignments'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    serviceBusNamespaceName: serviceBus.outputs.name
    restoreRequestsQueue: restoreRequestsQueue
    browseRequestsQueue: browseRequestsQueue
    activationRequestsQueue: activationRequestsQueue
    restoreEventsTopic: restoreEventsTopic
    exampleSubscription: exampleSubscription
    storageAccountName: storage.outputs.name
    ledgerTable: ledgerTable
    applicationInsightsName: monitoring.outputs.name
    approverPrincipalIds: approvers
    requesterPrincipalIds: requesters
    eventReaderPrincipalIds: eventReaders
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = app.outputs.name
output SERVICE_API_NAME string = app.outputs.name
// The principal to grant the Graph application permissions to (infra/hooks/grant-graph-permissions.sh).
output AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output GRAPH_TENANT_ID string = graphTenant
// What the command line needs to reach the deployment with your own sign-in (see the README).
output SERVICE_BUS_FULLY_QUALIFIED_NAMESPACE string = '${serviceBus.outputs.name}.servicebus.windows.net'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.name
